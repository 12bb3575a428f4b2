"""The demo's `README.md`: tables, figures and the findings in plain words.

Everything comes from the models' and studies' JSON summaries; statements are chosen by
thresholds written out here, so the text never claims more than the numbers show.
"""

from __future__ import annotations

import platform
from pathlib import Path

from analysis import plots
from analysis.common import md_table

LEARNED = 0.90  # a CoT model "learned its task" at this accuracy (issue #6)


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def write_report(out: Path, models: list[dict], studies: list[dict], *, quick: bool, minutes: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# lrm-jax demo report", ""]
    if quick:
        lines += ["**This is a `--quick` pipeline check**: tiny models trained for a few steps on a few hundred "
                  "records, on the arithmetic task only. They have not learned anything; the numbers below only "
                  "show that every stage ran. "
                  "Run `python -m analysis.demo` without `--quick` for the real (about 30-minute) run.", ""]
    lines += [f"Machine: {platform.machine()}, {platform.system()}; this invocation took {minutes:.1f} min "
              "(a rerun skips finished steps; each model's own minutes are in the table).", "",
              "## Models", "",
              md_table(["task", "method", "steps", "minutes", "stopped by", "accuracy (validation)"],
                       [[m["task"], m["method"], m["steps"], f"{m['minutes']:.1f}", m["stopped"], _pct(m["accuracy"])]
                        for m in models])]
    for task in sorted({m["task"] for m in models}):
        cot = next((m for m in models if m["task"] == task and m["method"] == "cot"), None)
        if cot is not None:
            verdict = "learned its task" if cot["accuracy"] >= LEARNED else (
                f"did NOT learn its task (below {LEARNED:.0%}); the studies below describe a model that has not "
                "learned the task, so they say little about the paper's claims")
            lines.append(f"- {task}: the CoT model {verdict} ({_pct(cot['accuracy'])}).")
            if task == "logic" and cot["accuracy"] < LEARNED:
                lines.append("  Why, as far as we know (RESULTS.md, logic section): every logic step must find a "
                             "rule by its subject and copy its object; GPT-2 models this small (ours and "
                             "transformers' alike) learn such in-context lookup within a few minutes only with "
                             "keys that see their previous tokens (`model.key_smear`) and a chain of thought "
                             "that asks from the concept itself (`cot: concepts`); `python -m "
                             "benchmarks.recall_probe` measures the lookup alone. With less time than the demo's "
                             "default, the lookup may not have been learned yet.")
    lines += ["", "## 1. Are the thoughts necessary? (necessity, paper section 2)", ""]
    nec = [(s, s["necessity"]) for s in studies if isinstance(s.get("necessity"), dict) and "n" in s["necessity"]]
    if nec:
        for s, v in nec:
            v["name"] = f"{s['task']} {v['label']}"
        plots.figure2([v for _, v in nec], out / "figure2.png")
        rows = []
        for s, v in nec:
            acc = v["per_k"]["none"]["accuracy"]
            rows.append([s["task"], v["label"], v["n"], f"{v['first_match_pct_mean']:.1f} ± {v['first_match_pct_sd']:.1f}",
                         f"{v['stable_match_pct_mean']:.1f} ± {v['stable_match_pct_sd']:.1f}", _pct(v["no_reasoning_needed"]),
                         _pct(acc[0]), _pct(v["accuracy_full"])])
        lines += [md_table(["task", "model", "n", "% reasoning needed (first match)", "(stable match)",
                            "answer already final with none", "accuracy k=0", "accuracy, full reasoning"], rows),
                  "![Figure 2 layout](figure2.png)", ""]
        for s, v in nec:
            if v["family"] == "cot":
                continue
            acc = v["per_k"]["none"]["accuracy"]
            needed = acc[-1] - acc[0]
            nocot = next((m["accuracy"] for m in models if m["task"] == s["task"] and m["method"] == "nocot"), None)
            if nocot is not None and acc[-1] <= nocot + 0.05:
                lines.append(f"- {s['task']}, {v['label']}: with all its thoughts ({_pct(acc[-1])}) it is no better "
                             f"than No-CoT ({_pct(nocot)}): it has not learned to use them, so this says nothing "
                             "about whether they are needed.")
                continue
            words = ("the thoughts are needed: removing them costs " if needed > 0.10 else
                     "the thoughts are hardly needed: removing them changes accuracy by ")
            lines.append(f"- {s['task']}, {v['label']}: {words}{100 * needed:+.1f} points "
                         f"({_pct(acc[0])} with none, {_pct(acc[-1])} with all {len(acc) - 1}); for "
                         f"{_pct(v['no_reasoning_needed'])} of instances the answer with no thought is already the final one.")
            kinds = {k: x["accuracy"][-1] for k, x in v["per_k"].items() if k != "none"}
            if kinds:
                lines.append("  Interventions on every thought (accuracy with all slots): "
                             + ", ".join(f"{k} {_pct(a)}" for k, a in kinds.items()) + ".")
    lines += ["", "## 2. Can the gold trace be decoded? (vocabulary projection + backtracking, section 3)", ""]
    dec = [(s, s["decode"]) for s in studies if isinstance(s.get("decode"), dict) and "correct" in s["decode"]]
    rows = []
    for s, v in dec:
        rel = Path(s["dir"]).relative_to(out) / "decode"
        rows.append([s["task"], v["label"], v["correct"]["n"], _pct(v["correct"]["found_any_q"]), _pct(v["correct"]["found_any"]),
                     v["incorrect"]["n"], _pct(v["incorrect"]["found_any_q"]), _pct(v["correct"]["baseline_best_of_5"]),
                     f"[figure]({rel}/figure5.png), [viewer]({rel}/viewer.html)"])
    if rows:
        lines += [md_table(["task", "model", "correct n", "found (+question)", "found (no question)", "incorrect n",
                            "found (+question)", "random trace best of 5 (correct)", "files"], rows), ""]
    lines += ["## 3. A verified trace without the gold trace? (forward chaining + verification, section 4)", ""]
    srch = [(s, s["search"]) for s in studies if isinstance(s.get("search"), dict) and "correct" in s["search"]]
    rows = [[s["task"], v["label"], v["correct"]["n"], *[_pct(v["correct"][f"verified_r{r}"]) for r in (1, 2, 3)],
             v["incorrect"]["n"], *[_pct(v["incorrect"][f"verified_r{r}"]) for r in (1, 2, 3)]] for s, v in srch]
    if rows:
        lines += [md_table(["task", "model", "correct n", "verified r=1", "r=2", "r=3", "incorrect n", "r=1", "r=2", "r=3"], rows), ""]
    lines += ["On the arithmetic task a trace is verified when editing the question's numbers moves its values as "
              "the computation predicts; on the logic task when renaming each of its concepts in the question moves "
              "the thought that showed it to the new name (r = renames out of 3 that must pass).", "",
              "## Correctness signal (AUROC, bootstrap 95% CI)", ""]
    rows = []
    for s, v in dec + srch:
        for k, a in v.get("auroc", {}).items():
            rows.append([s["task"], v["label"], k, a["auroc"], f"{a['ci_low']:.3f}-{a['ci_high']:.3f}"])
    if rows:
        lines.append(md_table(["task", "model", "predictor", "AUROC", "95% CI"], rows))
    failed = [f"{s['task']}/{s['name']}: {k}" for s in studies for k, v in s.items() if isinstance(v, dict) and "error" in v]
    if failed:
        lines += ["", "Studies that failed: " + "; ".join(failed) + "."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
