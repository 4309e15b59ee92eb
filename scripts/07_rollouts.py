"""Stage 07: the policy (Phase B by default) answers every training question K times, its samples
spread over (reasoning strategy x temperature) arms by a bandit; each trajectory is scored
(correct, s_end, s_path, s_cf, s_wm, length, self-reward, CELR) and the scores become
correctness-first preference pairs (or SPIN pairs) for stage 08.

Reads data/RUN/sample_train.jsonl, student_drafts.jsonl (when the policy was trained with drafts),
train_cot.jsonl (PAIR_MODE=spin) and the POLICY checkpoint. Writes, under data/RUN[/ROLLOUT_SUBDIR]:
rollouts.jsonl (one row per question, appended: a killed run resumes), bandit_state.json,
preferences.jsonl (TRL), sharegpt_preferences.jsonl (Axolotl / LLaMA-Factory), rollout_report.json,
rollout_report.md and rollout_scores.png.
"""

import random
import time

from common.config import float_list, load_config, print_config, shown, split_list
from common.data.prompts import render_prompt
from common.data.records import to_sharegpt_preference
from common.data.tasks import get_task
from common.errors import DataError, run_main
from common.eval.evaluate import PHASES, resolve_checkpoint
from common.jsonl import JsonlAppender, read_jsonl, write_json, write_jsonl
from common.manifest import write_manifest
from common.models.generation import generate
from common.models.loading import load_model
from common.plots import plot_rollout_scores
from common.rollout.bandit import Bandit
from common.rollout.coherence import counterfactual_probes
from common.rollout.drafts import read_draft_texts
from common.rollout.pairs import correctness_first_pairs, outcome_counts, spin_pairs
from common.rollout.report import SCORES, build_rollout_report, render_markdown
from common.rollout.scoring import Weights, score_trajectories
from common.rollout.self_reward import check_judge, judge_with_policy, judge_with_teacher


def rollout_chunk(cfg, task, model, tokenizer, chunk, drafts, bandit, arms, chunk_index, judge):
    """Sample, probe, judge and score one chunk of questions; return their rollout rows."""
    K = cfg.rollout.rollouts_per_question
    picks = bandit.choose_batch(K * len(chunk), random.Random(f"{cfg.run.random_seed}:{chunk_index}"))
    messages = {
        (q["id"], s): task.build_messages(q["question"], s, drafts.get(q["id"]))
        for q in chunk
        for s, _ in arms
    }
    jobs = [(qi, k, arms[picks[qi * K + k]]) for qi in range(len(chunk)) for k in range(K)]
    texts = {}
    for temperature in sorted({t for _, _, (_, t) in jobs}):
        mine = [(qi, k, s) for qi, k, (s, t) in jobs if t == temperature]
        prompts = [render_prompt(tokenizer, messages[(chunk[qi]["id"], s)]) for qi, _, s in mine]
        gens = generate(
            model,
            tokenizer,
            prompts,
            cfg.rollout.rollout_max_new_tokens,
            batch_size=cfg.generation.gen_batch_size,
            temperature=temperature,
            seed=hash_seed(cfg, chunk_index, temperature),
            desc=f"rollouts T={temperature:g}",
        )
        texts.update({(qi, k): g for (qi, k, _), g in zip(mine, gens, strict=True)})

    # s_cf: each strategy that sampled a question re-asks it paraphrased and perturbed, greedily.
    probe_answers: dict[tuple[str, str], dict] = {}
    if cfg.rollout.counterfactual:
        probes = []
        for qi, q in enumerate(chunk):
            for s in sorted({s for i, _, (s, _) in jobs if i == qi}):
                for kind, text in counterfactual_probes(q["question"], task.answer_kind).items():
                    probes.append((q["id"], s, kind, task.build_messages(text, s, drafts.get(q["id"]))))
        gens = generate(
            model,
            tokenizer,
            [render_prompt(tokenizer, m) for *_, m in probes],
            cfg.rollout.rollout_max_new_tokens,
            batch_size=cfg.generation.gen_batch_size,
            desc="probes",
        )
        for (qid, s, kind, _), g in zip(probes, gens, strict=True):
            probe_answers.setdefault((qid, s), {})[kind] = task.extract_answer(g.text)

    rows = []
    for qi, q in enumerate(chunk):
        trajectories = []
        for k in range(K):
            strategy, temperature = arms[picks[qi * K + k]]
            g = texts[(qi, k)]
            pred = task.extract_answer(g.text)
            trajectories.append(
                {
                    "k": k,
                    "arm": arm_name(strategy, temperature),
                    "strategy": strategy,
                    "temperature": temperature,
                    "text": g.text,
                    "pred": pred,
                    "correct": task.is_correct(pred, q["answer"]),
                    "parse_ok": pred is not None,
                    "tokens": g.new_tokens,
                    "truncated": g.truncated,
                }
            )
        rows.append({"q": q, "trajectories": trajectories})
    judgements = judge(
        [(r["q"]["question"], t["text"]) for r in rows for t in r["trajectories"]],
        [f"{r['q']['id']}-{t['k']}" for r in rows for t in r["trajectories"]],
    )
    weights = Weights.from_config(cfg.rollout)
    out = []
    for i, r in enumerate(rows):
        q = r["q"]
        strategies = {t["strategy"] for t in r["trajectories"]}
        scored = score_trajectories(
            r["trajectories"],
            task.answer_kind,
            {s: probe_answers.get((q["id"], s), {}) for s in strategies},
            judgements[i * K : (i + 1) * K],
            weights,
        )
        out.append(
            {
                "id": q["id"],
                "question": q["question"],
                "gold": q["answer"],
                "policy": cfg.rollout.policy,
                "prompts": {s: messages[(q["id"], s)] for s in sorted(strategies)},
                "probes": {s: probe_answers.get((q["id"], s), {}) for s in sorted(strategies)},
                "trajectories": scored,
            }
        )
    return out


def arm_name(strategy: str, temperature: float) -> str:
    return f"{strategy}@{temperature:g}"


def hash_seed(cfg, chunk_index: int, temperature: float) -> int:
    return random.Random(f"{cfg.run.random_seed}:{chunk_index}:{temperature}").randrange(2**31)


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "07 rollouts")
    task = get_task(cfg.run.task)
    check_judge(cfg)
    policy = resolve_checkpoint(cfg, cfg.rollout.policy)
    sample_path = cfg.run.data_dir / "sample_train.jsonl"
    questions = read_jsonl(sample_path, made_by="sample")
    questions = questions[: cfg.rollout.rollout_questions] if cfg.rollout.rollout_questions else questions
    inputs = {"sample_train": sample_path, "policy": policy.path}
    drafts = {}
    if policy.with_draft:
        inputs["student_drafts"] = cfg.run.data_dir / "student_drafts.jsonl"
        drafts = read_draft_texts(cfg)
    out_dir = cfg.run.rollout_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    arms = [
        (s, t)
        for s in split_list(cfg.rollout.rollout_strategies)
        for t in float_list(cfg.rollout.rollout_temperatures)
    ]
    bandit = Bandit([arm_name(s, t) for s, t in arms], cfg.rollout.bandit)
    arm_index = {name: i for i, name in enumerate(bandit.arms)}
    chunks = [
        questions[i : i + cfg.rollout.rollout_chunk]
        for i in range(0, len(questions), cfg.rollout.rollout_chunk)
    ]
    rollouts_path = out_dir / "rollouts.jsonl"

    with JsonlAppender(rollouts_path) as store:
        made_by = {r["policy"] for r in store.rows.values()} - {cfg.rollout.policy}
        if made_by:
            raise DataError(
                f"{shown(rollouts_path)} holds rollouts of POLICY={made_by.pop()}, not "
                f"{cfg.rollout.policy}; move it away or set ROLLOUT_SUBDIR"
            )
        done = sum(q["id"] in store for q in questions)
        print(
            f"rollouts: {done} of {len(questions)} questions already done; K="
            f"{cfg.rollout.rollouts_per_question} over {len(arms)} arms ({cfg.rollout.bandit})"
        )
        # The bandit's state is replayed from the saved rows, so a resumed run picks the same arms.
        for q in questions:
            for t in store.rows[q["id"]]["trajectories"] if q["id"] in store else []:
                if t["arm"] in arm_index:
                    bandit.update(arm_index[t["arm"]], t["bandit_reward"])
        if done < len(questions):
            model, tokenizer = load_model(policy.path, cfg, made_by=PHASES.get(cfg.rollout.policy, "phaseB"))
            judge = make_judge(cfg, task, model, tokenizer, out_dir)
            for index, chunk in enumerate(chunks):
                todo = [q for q in chunk if q["id"] not in store]
                if not todo:
                    continue
                for row in rollout_chunk(
                    cfg, task, model, tokenizer, todo, drafts, bandit, arms, index, judge
                ):
                    store.append(row)
                    for t in row["trajectories"]:
                        bandit.update(arm_index[t["arm"]], t["bandit_reward"])
                write_json(out_dir / "bandit_state.json", bandit.state())
        rows = [store.rows[q["id"]] for q in questions]
    write_json(out_dir / "bandit_state.json", bandit.state())

    # Preference pairs: correctness first, or SPIN against the Phase B targets.
    if cfg.rollout.pair_mode == "spin":
        inputs["train_cot"] = cfg.run.data_dir / "train_cot.jsonl"
        targets = {r["id"]: r for r in read_jsonl(inputs["train_cot"], made_by="datasets")}
        pairs = [p for r in rows for p in spin_pairs(r, targets.get(r["id"]), cfg.rollout.pairs_per_question)]
        counts = [outcome_counts(r) for r in rows]
    else:
        made = [
            correctness_first_pairs(
                r,
                cfg.rollout.pairs_per_question,
                cfg.rollout.coherence_margin,
                cfg.run.random_seed,
                cfg.rollout.rejected_cut == "first_error",
            )
            for r in rows
        ]
        pairs = [p for ps, _ in made for p in ps]
        counts = [c for _, c in made]
    prefs_path, sharegpt_path = (
        out_dir / "preferences.jsonl",
        out_dir / "sharegpt_preferences.jsonl",
    )
    write_jsonl(prefs_path, pairs)
    write_jsonl(sharegpt_path, [to_sharegpt_preference(p) for p in pairs])

    report = build_rollout_report(rows, pairs, counts, bandit.state())
    report_paths = [
        out_dir / "rollout_report.json",
        out_dir / "rollout_report.md",
        out_dir / "rollout_scores.png",
    ]
    write_json(report_paths[0], report)
    report_paths[1].write_text(render_markdown(report))
    plot_rollout_scores(rows, SCORES, report_paths[2])
    outputs = [
        rollouts_path,
        out_dir / "bandit_state.json",
        prefs_path,
        sharegpt_path,
        *report_paths,
    ]
    manifest = write_manifest(out_dir, "rollouts", cfg, inputs, outputs, {"report": report}, started)
    print(render_markdown(report))
    if not pairs:
        print(
            f"warning: no preference pairs: every question was all correct or all wrong "
            f"({report['all_correct_questions']} / {report['all_wrong_questions']}); raise "
            f"ROLLOUTS_PER_QUESTION or the temperatures"
        )
    print(
        f"wrote {shown(rollouts_path)}, {shown(prefs_path)} ({len(pairs)} pairs), "
        f"{shown(report_paths[1])}; manifest {shown(manifest)}"
    )


def make_judge(cfg, task, model, tokenizer, out_dir):
    """judge(items, keys) -> one judgement text per item, or None where nothing judged it."""
    if cfg.rollout.self_reward_judge == "policy":
        return lambda items, keys: judge_with_policy(cfg, model, tokenizer, items)
    if cfg.rollout.self_reward_judge == "teacher":
        ledger = out_dir / "judge_cost.jsonl"
        return lambda items, keys: judge_with_teacher(cfg, task, items, keys, ledger)
    return lambda items, keys: [None] * len(items)


if __name__ == "__main__":
    run_main(main)
