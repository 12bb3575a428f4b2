"""The README's main job, `python -m analysis.demo --quick`, end to end on tiny settings."""

import json

from analysis import demo


def test_quick_demo_end_to_end_and_resumable(tmp_path, capsys):
    out = tmp_path / "report"
    assert demo.main(["--quick", "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    assert "pipeline check" in readme and "have not learned anything" in readme
    for section in ("## Models", "## 1. Are the thoughts necessary?", "## 2. Can the gold trace be decoded?",
                    "## 3. A verified trace without the gold trace?", "## Correctness signal"):
        assert section in readme
    assert (out / "figure2.png").stat().st_size > 0
    for name in ("coconut", "codi"):
        for study in ("necessity", "decode", "search"):
            assert json.loads((out / "studies" / f"arithmetic_{name}" / study / "summary.json").read_text())["n"] > 0
        assert (out / "studies" / f"arithmetic_{name}" / "decode" / "viewer.html").exists()
    models = {m: json.loads((out / "runs" / f"arithmetic_{m}" / "demo_done.json").read_text()) for m in ("cot", "nocot", "coconut", "codi")}
    assert all(m["steps"] == 6 and m["stopped"] == "max_steps" for m in models.values())
    capsys.readouterr()
    # Rerunning skips every finished step and rewrites the same report.
    assert demo.main(["--quick", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done earlier, skipped") == 4
    assert "## Models" in (out / "README.md").read_text()


def test_report_says_which_cot_models_learned_and_why_logic_did_not(tmp_path):
    from analysis.report import write_report

    models = [
        {"task": t, "method": "cot", "steps": 100, "minutes": 1.0, "stopped": "time_limit", "accuracy": acc}
        for t, acc in (("arithmetic", 0.97), ("logic", 0.48))
    ]
    write_report(tmp_path, models, [], quick=False, minutes=2.0)
    readme = (tmp_path / "README.md").read_text()
    assert "- arithmetic: the CoT model learned its task (97.0%)." in readme
    assert "- logic: the CoT model did NOT learn its task" in readme
    assert readme.count("Why, as far as we know") == 1 and "benchmarks.recall_probe" in readme
    models[1]["accuracy"] = 0.95
    write_report(tmp_path, models, [], quick=False, minutes=2.0)
    assert "Why, as far as we know" not in (tmp_path / "README.md").read_text()


def test_report_does_not_read_necessity_into_a_latent_model_at_no_cot_level(tmp_path):
    """A latent model no better than No-CoT has not learned to use its thoughts: the report
    must not call them "hardly needed"; a learned one gets the necessity verdict."""
    from analysis.report import write_report

    def nec(acc_none):
        return {"n": 10, "label": "COCONUT", "family": "coconut", "accuracy_full": acc_none[-1],
                "first_match_pct_mean": 40.0, "first_match_pct_sd": 5.0, "stable_match_pct_mean": 50.0,
                "stable_match_pct_sd": 5.0, "no_reasoning_needed": 0.3, "per_k": {"none": {"accuracy": acc_none}}}

    models = [{"task": "logic", "method": m, "steps": 1, "minutes": 1.0, "stopped": "finished", "accuracy": a}
              for m, a in (("cot", 0.99), ("nocot", 0.50))]
    studies = [{"task": "logic", "name": "coconut", "method": "coconut", "necessity": nec([0.52, 0.50, 0.51])}]
    write_report(tmp_path, models, studies, quick=False, minutes=1.0)
    readme = (tmp_path / "README.md").read_text()
    assert "no better than No-CoT (50.0%)" in readme and "hardly needed" not in readme
    studies[0]["necessity"] = nec([0.49, 0.51, 0.98])
    write_report(tmp_path, models, studies, quick=False, minutes=1.0)
    readme = (tmp_path / "README.md").read_text()
    assert "the thoughts are needed: removing them costs +49.0 points" in readme
