"""Loading the student (base, adapter or full weights), generation (Hugging Face, vLLM), and the
tiny offline model."""
