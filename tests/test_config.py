"""Config schema: YAML diffs, --set overrides and validation errors that name the key."""

import pytest

from lrm_jax.config import ConfigError, ModelConfig, load, to_dict, from_dict


def test_yaml_diff_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_layer: 3\nn_embd: 64\n")
    cfg = load(ModelConfig, p, ["n_head=8", "layer_norm_epsilon=1e-6"])
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.layer_norm_epsilon) == (3, 64, 8, 1e-6)
    assert cfg.vocab_size == ModelConfig().vocab_size
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["n_layers=3"], "unknown config key.*n_layers"),
        (["n_embd=30"], "divisible"),
        (["n_layer=two"], "n_layer must be int"),
        (["dtype=float16"], "dtype"),
        (["thought_norm=rms"], "thought_norm must be .none. or .embedding."),
        (["n_layer"], "key=value"),
    ],
)
def test_bad_values_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load(ModelConfig, None, overrides)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(ModelConfig, tmp_path / "nope.yaml")


def test_data_seed_fixes_the_records_across_training_seeds():
    from lrm_jax.config import RunConfig
    from lrm_jax.training.setup import load_data

    def records(**seeds):
        data = {"task": "arithmetic", "n_train": 20, "n_valid": 5}
        if "data" in seeds:
            data["seed"] = seeds["data"]
        cfg = from_dict(RunConfig, {"data": data, "train": {"seed": seeds["train"]}})
        train, valid, notes = load_data(cfg)
        return [r.question for r in train + valid], notes

    fixed_0, notes = records(train=0, data=7)
    fixed_1, _ = records(train=1, data=7)
    assert fixed_0 == fixed_1 and "seed 7" in notes[0]
    follow_0, _ = records(train=0)
    follow_1, _ = records(train=1)
    assert follow_0 != follow_1  # -1: the records follow train.seed, as before data.seed existed
    assert follow_0 == records(train=0, data=0)[0]
    with pytest.raises(ConfigError, match="data.seed"):
        from_dict(RunConfig, {"data": {"seed": -2}})
