"""Stage 03: teacher backends (OpenAI, Anthropic, offline), the concurrent runner, and costs."""
