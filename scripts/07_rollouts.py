"""Stage 07: the policy (Phase B by default) answers every training question K times, its samples
spread over (reasoning strategy x temperature) arms by a bandit; each trajectory is scored
(correct, s_end, s_path, s_cf, s_wm, length, self-reward (Self-Rewarding LMs, Yuan et al. 2024),
and their weighted sum) and the scores become preference pairs for stage 08.

Correctness is graded against LABEL_SOURCE: the gold answer, the teacher's (stage 03) or the
majority of the question's own K rollouts (self-consistency); questions left without a label are
counted and give no pairs. PAIR_SOURCE makes the pairs from correctness, the self-reward judge,
the trajectory composite, or correctness then the judge (PAIR_MODE=spin pairs SPIN-style instead).

Reads data/RUN/sample_train.jsonl, student_drafts.jsonl (when the policy was trained with drafts;
with DRAFTS_FROM=policy the policy drafts for itself into policy_drafts.jsonl instead),
teacher_outputs.jsonl (LABEL_SOURCE=teacher; otherwise only for the report's label-noise table,
when present), train_phaseB.jsonl (PAIR_MODE=spin) and the POLICY checkpoint.
Writes, under data/RUN[/ROLLOUT_SUBDIR]:
rollouts.jsonl (one row per question, appended: a killed run resumes), bandit_state.json,
preferences.jsonl (TRL), sharegpt_preferences.jsonl (Axolotl / LLaMA-Factory), rollout_report.json,
rollout_report.md and rollout_scores.png. A teacher judge's calls go to the run's cost ledger,
data/RUN/teacher_cost.jsonl, under MAX_COST_USD.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.config import Config, float_list, load_config, shown, split_list
from common.data.prompts import render_prompt
from common.data.records import to_sharegpt_preference
from common.data.tasks import Task, get_task
from common.errors import ConfigError, DataError, run_main
from common.eval.evaluate import PHASES, resolve_checkpoint
from common.eval.question_judge import question_scores
from common.fingerprint import hash_input, keep_rows, row_fp
from common.jsonl import JsonlAppender, read_jsonl, write_json, write_jsonl
from common.models.generation import generate
from common.models.loading import load_model
from common.plots import plot_rollout_scores
from common.rollout.bandit import Bandit
from common.rollout.coherence import counterfactual_probes
from common.rollout.drafts import own_drafts, read_draft_texts
from common.rollout.labels import apply_label, label_noise, question_label, read_teacher_answers
from common.rollout.pairs import outcome_counts, question_pairs, spin_pairs
from common.rollout.report import SCORES, build_rollout_report, render_markdown
from common.rollout.scoring import Weights, score_trajectories
from common.rollout.self_reward import check_judge, judge_with_policy, judge_with_teacher
from common.stage import StageRun, stage_run


@dataclass
class Sampler:
    """What every chunk of questions shares: the policy, the drafts its prompts carry, the
    (strategy, temperature) arms the bandit picks from, the judge of each trajectory, and the
    teacher's answers (LABEL_SOURCE=teacher)."""

    cfg: Config
    task: Task
    model: Any
    tokenizer: Any
    drafts: dict[str, str]
    arms: list[tuple[str, float]]
    judge: Callable[[list[tuple[str, str]], list[str]], list[str | None]]
    question_scores: dict[str, float | None]  # QUESTION_WEIGHT: the judge's score of each draft
    teacher: dict[str, str | None] | None = None


def rollout_chunk(sampler: Sampler, chunk: list[dict], bandit: Bandit, chunk_index: int) -> list[dict]:
    """Sample, probe, judge and score one chunk of questions; return their rollout rows."""
    cfg, K = sampler.cfg, sampler.cfg.rollout.rollouts_per_question
    picks = bandit.choose_batch(K * len(chunk), random.Random(f"{cfg.run.random_seed}:{chunk_index}"))
    arms_of = {q["id"]: [sampler.arms[picks[qi * K + k]] for k in range(K)] for qi, q in enumerate(chunk)}
    messages = {
        (q["id"], s): sampler.task.build_messages(q["question"], s, sampler.drafts.get(q["id"]))
        for q in chunk
        for s, _ in sampler.arms
    }
    texts = sample_trajectories(sampler, chunk, arms_of, messages, chunk_index)
    probes = probe_answers(sampler, chunk, arms_of) if cfg.rollout.counterfactual else {}
    # Graded in one batch: a code task runs all the chunk's programs in parallel.
    grades = iter(
        sampler.task.grade_many(
            [texts[(q["id"], k)].text for q in chunk for k in range(K)],
            [q["answer"] for q in chunk for k in range(K)],
        )
    )
    rows = [
        (q, [trajectory(q, k, *arms_of[q["id"]][k], texts[(q["id"], k)], next(grades)) for k in range(K)])
        for q in chunk
    ]
    judgements = sampler.judge(
        [(q["question"], t["text"]) for q, ts in rows for t in ts],
        [f"{q['id']}-{t['k']}" for q, ts in rows for t in ts],
    )
    weights = Weights.from_config(cfg.rollout)
    out = []
    for i, (q, trajectories) in enumerate(rows):
        # Graded against the label before scoring: rewards and the bandit see no gold unless
        # LABEL_SOURCE=gold.
        label = question_label(
            cfg.rollout.label_source,
            q,
            [t["pred"] for t in trajectories],
            sampler.teacher,
            cfg.rollout.majority_min,
        )
        apply_label(trajectories, label, sampler.task)
        strategies = sorted({t["strategy"] for t in trajectories})
        probes_of = {s: probes.get((q["id"], s), {}) for s in strategies}
        scored = score_trajectories(
            trajectories,
            sampler.task.answer_kind,
            probes_of,
            judgements[i * K : (i + 1) * K],
            weights,
            cfg.rollout.judge_rubric,
            sampler.question_scores.get(q["id"]),
        )
        out.append(
            {
                "id": q["id"],
                "question": q["question"],
                "gold": q["answer"],
                "label": label | {"source": cfg.rollout.label_source},
                "policy": cfg.rollout.policy,
                "drafts_from": cfg.generation.drafts_from if sampler.drafts else None,
                "prompts": {s: messages[(q["id"], s)] for s in strategies},
                "probes": probes_of,
                "trajectories": scored,
            }
        )
    return out


def sample_trajectories(sampler: Sampler, chunk, arms_of, messages, chunk_index) -> dict:
    """{(question id, k): generation}: the K samples of each question, one batch per temperature."""
    cfg, jobs = sampler.cfg, [(q["id"], k, arm) for q in chunk for k, arm in enumerate(arms_of[q["id"]])]
    texts = {}
    for temperature in sorted({t for _, _, (_, t) in jobs}):
        mine = [(qid, k, s) for qid, k, (s, t) in jobs if t == temperature]
        prompts = [render_prompt(sampler.tokenizer, messages[(qid, s)]) for qid, _, s in mine]
        gens = generate(
            sampler.model,
            sampler.tokenizer,
            prompts,
            cfg.rollout.rollout_max_new_tokens,
            batch_size=cfg.generation.gen_batch_size,
            temperature=temperature,
            seed=hash_seed(cfg, chunk_index, temperature),
            desc=f"rollouts T={temperature:g}",
        )
        texts.update({(qid, k): g for (qid, k, _), g in zip(mine, gens, strict=True)})
    return texts


def probe_answers(sampler: Sampler, chunk, arms_of) -> dict[tuple[str, str], dict]:
    """s_cf: each strategy that sampled a question re-asks it paraphrased and perturbed, greedily."""
    task, probes = sampler.task, []
    for q in chunk:
        for s in sorted({s for s, _ in arms_of[q["id"]]}):
            for kind, text in counterfactual_probes(q["question"], task.answer_kind).items():
                probes.append((q["id"], s, kind, task.build_messages(text, s, sampler.drafts.get(q["id"]))))
    gens = generate(
        sampler.model,
        sampler.tokenizer,
        [render_prompt(sampler.tokenizer, m) for *_, m in probes],
        sampler.cfg.rollout.rollout_max_new_tokens,
        batch_size=sampler.cfg.generation.gen_batch_size,
        desc="probes",
    )
    answers: dict[tuple[str, str], dict] = {}
    for (qid, s, kind, _), g in zip(probes, gens, strict=True):
        answers.setdefault((qid, s), {})[kind] = task.extract_answer(g.text)
    return answers


def trajectory(q: dict, k: int, strategy: str, temperature: float, g, graded: dict) -> dict:
    return {
        "k": k,
        "arm": arm_name(strategy, temperature),
        "strategy": strategy,
        "temperature": temperature,
        "text": g.text,
        **graded,
        "tokens": g.new_tokens,
        "truncated": g.truncated,
    }


def arm_name(strategy: str, temperature: float) -> str:
    return f"{strategy}@{temperature:g}"


def hash_seed(cfg, chunk_index: int, temperature: float) -> int:
    return random.Random(f"{cfg.run.random_seed}:{chunk_index}:{temperature}").randrange(2**31)


def make_judge(cfg, task, model, tokenizer):
    """judge(items, keys) -> one judgement text per item, or None where nothing judged it."""
    if cfg.rollout.self_reward_judge == "policy":
        return lambda items, keys: judge_with_policy(cfg, model, tokenizer, items)
    if cfg.rollout.self_reward_judge == "teacher":
        # The run's one cost ledger: MAX_COST_USD caps stage 03 and the judge together.
        ledger = cfg.run.data_dir / "teacher_cost.jsonl"
        return lambda items, keys: judge_with_teacher(cfg, task, items, keys, ledger)
    return lambda items, keys: [None] * len(items)


def make_arms(cfg) -> tuple[list[tuple[str, float]], Bandit]:
    arms = [
        (s, t)
        for s in split_list(cfg.rollout.rollout_strategies)
        for t in float_list(cfg.rollout.rollout_temperatures)
    ]
    return arms, Bandit([arm_name(s, t) for s, t in arms], cfg.rollout.bandit)


def check_policy(store: JsonlAppender, cfg) -> None:
    made_by = {r["policy"] for r in store.rows.values()} - {cfg.rollout.policy}
    if made_by:
        raise DataError(
            f"{shown(store.path)} holds rollouts of POLICY={made_by.pop()}, not "
            f"{cfg.rollout.policy}; move it away or set ROLLOUT_SUBDIR"
        )


def run_rollouts(cfg, task, policy, questions, drafts, scores, teacher, out_dir) -> tuple[list[dict], Bandit]:
    """Every question's rollout row, appended chunk by chunk (a killed run resumes), and the bandit."""
    arms, bandit = make_arms(cfg)
    arm_index = {name: i for i, name in enumerate(bandit.arms)}
    chunks = [
        questions[i : i + cfg.rollout.rollout_chunk]
        for i in range(0, len(questions), cfg.rollout.rollout_chunk)
    ]
    # Each row carries the fingerprint of the keys, the policy's weights and its question's draft
    # (and, graded by the teacher, the teacher's answer).
    policy_hash = hash_input(policy.path)
    by_teacher = cfg.rollout.label_source == "teacher"
    # With QUESTION_WEIGHT the judge's score of the draft is part of the rewards, so of the row too.
    fps = {
        q["id"]: row_fp(
            cfg,
            "rollouts",
            policy_hash,
            drafts.get(q["id"], ""),
            *([scores.get(q["id"])] if scores else []),
            *([(teacher or {}).get(q["id"])] if by_teacher else []),
        )
        for q in questions
    }
    with JsonlAppender(out_dir / "rollouts.jsonl") as store:
        check_policy(store, cfg)
        keep_rows(store, lambda row: fps.get(row["id"], row.get("fp")), "rollouts")
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
            judge = make_judge(cfg, task, model, tokenizer)
            sampler = Sampler(cfg, task, model, tokenizer, drafts, arms, judge, scores, teacher)
            for index, chunk in enumerate(chunks):
                todo = [q for q in chunk if q["id"] not in store]
                if not todo:
                    continue
                for row in rollout_chunk(sampler, todo, bandit, index):
                    row["fp"] = fps[row["id"]]
                    store.append(row)
                    for t in row["trajectories"]:
                        bandit.update(arm_index[t["arm"]], t["bandit_reward"])
                write_json(out_dir / "bandit_state.json", bandit.state())
        rows = [store.rows[q["id"]] for q in questions]
    write_json(out_dir / "bandit_state.json", bandit.state())
    return rows, bandit


def check_label_source(cfg, task) -> None:
    """A program is right when its tests pass; there is no answer to take from a teacher or a vote."""
    if task.answer_kind == "code" and cfg.rollout.label_source != "gold":
        raise ConfigError(
            f"LABEL_SOURCE={cfg.rollout.label_source} compares final answers; TASK={task.name} grades "
            "programs by running their tests: set LABEL_SOURCE=gold"
        )


def check_question_weight(cfg) -> None:
    """QUESTION_WEIGHT rewards the policy's own questions as a teacher judges them: stop before any
    sampling when that cannot happen."""
    if cfg.rollout.question_weight and cfg.generation.drafts_from != "policy":
        raise ConfigError(
            "QUESTION_WEIGHT rewards the policy's own clarifying questions: set DRAFTS_FROM=policy, "
            "or QUESTION_WEIGHT=0"
        )
    if cfg.rollout.question_weight and cfg.teacher.backend == "offline":
        raise ConfigError(
            "QUESTION_WEIGHT needs a model teacher to judge the questions; the offline teacher cannot "
            "judge: set TEACHER=openai|anthropic, or QUESTION_WEIGHT=0"
        )


def rollout_drafts(cfg, task, policy, questions, out_dir, run: StageRun) -> tuple[dict, dict]:
    """The draft each question is answered with ({id: text}; none when the policy was trained
    without drafts) and, with QUESTION_WEIGHT, the question judge's score of each draft.

    DRAFTS_FROM=base: the base student's drafts of stage 02. DRAFTS_FROM=policy: the policy drafts
    for itself into policy_drafts.jsonl here, so each round of `make loop` redrafts with its policy.
    """
    if not policy.with_draft:
        return {}, {}
    base_path = cfg.run.data_dir / "student_drafts.jsonl"
    if cfg.generation.drafts_from == "base":
        run.input("student_drafts", base_path)
        return read_draft_texts(cfg), {}
    own = own_drafts(cfg, task, questions, out_dir / "policy_drafts.jsonl", policy.path)
    drafts = {i: r["draft"] for i, r in own.items()}
    if not cfg.rollout.question_weight:
        return drafts, {}
    run.input("student_drafts", base_path)
    base = {r["id"]: r for r in read_jsonl(base_path, made_by="drafts")}
    scores = question_scores(cfg, task, questions, own, base, cfg.run.data_dir / "teacher_cost.jsonl")
    judged = [s for s in scores.values() if s is not None]
    print(f"question judge: {len(judged)} of {len(questions)} drafts asked questions and were judged")
    return drafts, scores


def make_pairs(cfg, rows: list[dict], run: StageRun) -> tuple[list[dict], list]:
    """Preference pairs from PAIR_SOURCE, or SPIN against the Phase B targets."""
    if cfg.rollout.pair_mode == "spin":
        run.input("train_phaseB", cfg.run.data_dir / "train_phaseB.jsonl")
        targets = {
            r["id"]: r for r in read_jsonl(cfg.run.data_dir / "train_phaseB.jsonl", made_by="datasets")
        }
        pairs = [p for r in rows for p in spin_pairs(r, targets.get(r["id"]), cfg.rollout.pairs_per_question)]
        return pairs, [outcome_counts(r) for r in rows]
    made = [question_pairs(r, cfg.rollout, cfg.run.random_seed) for r in rows]
    return [p for ps, _ in made for p in ps], [c for _, c in made]


def write_outputs(out_dir, rows, pairs, counts, bandit, labels: dict) -> tuple[dict, list]:
    """preferences.jsonl, its ShareGPT export, and the report (json, markdown, plot)."""
    write_jsonl(out_dir / "preferences.jsonl", pairs)
    write_jsonl(out_dir / "sharegpt_preferences.jsonl", [to_sharegpt_preference(p) for p in pairs])
    report = build_rollout_report(rows, pairs, counts, bandit.state(), labels)
    write_json(out_dir / "rollout_report.json", report)
    (out_dir / "rollout_report.md").write_text(render_markdown(report))
    plot_rollout_scores(rows, SCORES, out_dir / "rollout_scores.png")
    names = ("rollouts.jsonl", "bandit_state.json", "preferences.jsonl", "sharegpt_preferences.jsonl")
    names += ("rollout_report.json", "rollout_report.md", "rollout_scores.png")
    return report, [out_dir / n for n in names]


def warn_no_pairs(cfg, report: dict) -> None:
    """Why no pair was made, with the knob to turn."""
    unlabelled = sum(report["labels"]["unlabelled_questions"].values())
    if unlabelled == report["questions"]:
        fix = (
            "lower MAJORITY_MIN or raise ROLLOUTS_PER_QUESTION"
            if cfg.rollout.label_source == "majority"
            else "check data/RUN/teacher_outputs.jsonl (`make teacher`)"
        )
        print(
            f"warning: no preference pairs: no question got a label from LABEL_SOURCE="
            f"{cfg.rollout.label_source} ({report['labels']['unlabelled_questions']}); {fix}"
        )
    elif cfg.rollout.pair_source == "judge":
        print(
            f"warning: no preference pairs: no two trajectories of a prompt were judged at least "
            f"JUDGE_MARGIN={cfg.rollout.judge_margin:g} apart ({report['judge']['unparseable']} judgements "
            f"unparseable); lower JUDGE_MARGIN or try JUDGE_RUBRIC"
        )
    else:
        print(
            f"warning: no preference pairs: every question was all correct or all wrong "
            f"({report['all_correct_questions']} / {report['all_wrong_questions']}); raise "
            f"ROLLOUTS_PER_QUESTION or the temperatures"
        )


def read_teacher(cfg, run: StageRun) -> dict[str, str | None] | None:
    """The teacher's answers by question id: needed for LABEL_SOURCE=teacher (a missing file names
    `make teacher`), otherwise read when present so the report can show their agreement with gold."""
    path = cfg.run.data_dir / "teacher_outputs.jsonl"
    if cfg.rollout.label_source != "teacher" and not path.is_file():
        return None
    run.input("teacher_outputs", path)
    return read_teacher_answers(path)


def main() -> None:
    cfg, _ = load_config()
    task = get_task(cfg.run.task)
    with stage_run(cfg, "rollouts", "07 rollouts", cfg.run.rollout_dir) as run:
        check_judge(cfg)
        check_question_weight(cfg)
        check_label_source(cfg, task)
        policy = resolve_checkpoint(cfg, cfg.rollout.policy)
        questions = read_jsonl(cfg.run.data_dir / "sample_train.jsonl", made_by="sample")
        questions = questions[: cfg.rollout.rollout_questions] if cfg.rollout.rollout_questions else questions
        run.inputs |= {"sample_train": cfg.run.data_dir / "sample_train.jsonl", "policy": policy.path}
        out_dir = cfg.run.rollout_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        drafts, scores = rollout_drafts(cfg, task, policy, questions, out_dir, run)
        teacher = read_teacher(cfg, run)
        rows, bandit = run_rollouts(cfg, task, policy, questions, drafts, scores, teacher, out_dir)
        pairs, counts = make_pairs(cfg, rows, run)
        labels = {
            "source": cfg.rollout.label_source,
            "majority_min": cfg.rollout.majority_min,
            "noise": label_noise(rows, task, teacher, cfg.rollout.majority_min),
        }
        report, outputs = write_outputs(out_dir, rows, pairs, counts, bandit, labels)
        run.outputs(*outputs)
        run.extra["report"] = report
        print(render_markdown(report))
        if not pairs:
            warn_no_pairs(cfg, report)
        print(f"wrote {shown(outputs[0])}, {shown(outputs[2])} ({len(pairs)} pairs), {shown(outputs[5])}")


if __name__ == "__main__":
    run_main(main)
