import json

import torch

from lods.pipelines.train_judge import TrainJudgeConfig, augment, evaluate_judge, label_targets, train_judge
from lods.world.dataset import WorldRenders
from lods.world.judge import HEAD_CLASSES, Judge


def test_tiny_training_run_writes_a_loadable_judge(tmp_path):
    cfg = TrainJudgeConfig(out=str(tmp_path / "judge"), cache_dir=str(tmp_path / "data"), train_scenes=24,
                           heldout_scenes=8, views_per_scene=2, extra_multi_scenes=6, ring_scenes=2, epochs=1, batch_size=16, widths=(8, 8, 8), hidden=16)
    metrics = train_judge(cfg)
    files = sorted(p.name for p in (tmp_path / "judge").iterdir())
    assert files == ["config.json", "judge.safetensors"]
    meta = json.loads((tmp_path / "judge" / "config.json").read_text())
    assert meta["heldout_accuracy"] == metrics["heldout_accuracy"]
    assert meta["train_config"]["train_seed"] != meta["train_config"]["heldout_seed"]
    acc = metrics["heldout_accuracy"]
    assert acc["exact"] <= min(acc["category"], acc["shape1"], acc["color1"])  # heads every caption names, all right
    assert metrics["train_images"] == 24 * 2 + 6 * 2 and metrics["ring_images"] == 16
    judge = Judge.load(tmp_path / "judge")
    (held_file,) = (tmp_path / "data").glob(f"world_{cfg.heldout_seed}_*.npz")  # held-out renders, scored again
    held = WorldRenders.load(held_file)
    again = evaluate_judge(judge, torch.from_numpy(held.images), label_targets(held.labels))
    assert again["exact"] == acc["exact"] and len(held.images) == metrics["heldout_images"]
    assert judge.arch.widths == (8, 8, 8)
    assert judge.predict(torch.ones(2, 3, 32, 32))["category"].shape == (2, 3)
    # a second run reuses the cached renders (train and held-out) instead of rendering again
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").glob("*.npz")}
    assert len(cached) == 4  # train, extra two-object block, held-out, evaluation ring
    train_judge(cfg)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").glob("*.npz")} == cached


def test_augment_keeps_white_white_and_never_flips():
    cfg = TrainJudgeConfig(shift=0, noise=0.0, blur_prob=0.0, brightness=0.1)
    x = torch.ones(4, 3, 8, 8)
    x[:, :, 2:5, 1:3] = 0.3  # an object on the left
    y = augment(x, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(y[:, :, 5:], x[:, :, 5:])  # background untouched
    assert (y[:, :, 2:5, 1:3] - 0.3).abs().max() <= 0.07 + 1e-6
    shifted = augment(x, TrainJudgeConfig(shift=1, noise=0.0, blur_prob=0.0, brightness=0.0), torch.Generator().manual_seed(0))
    dark_cols = (shifted < 0.9).any(dim=2).any(dim=1).float().argmax(-1)  # leftmost dark column per image
    assert (dark_cols <= 2).all()  # still on the left: no flips


def test_label_targets_mark_unused_heads():
    labels = [
        {"category": "single", "objects": [{"shape": "cube", "color": "red"}], "context": None, "relation": None},
        {"category": "multi", "objects": [{"shape": "cube", "color": "red"}, {"shape": "sphere", "color": "blue"}],
         "context": None, "relation": "on top of"},
    ]
    t = label_targets(labels)
    assert t["relation"].tolist() == [-1, HEAD_CLASSES["relation"].index("on top of")]
    assert t["color2"].tolist() == [-1, HEAD_CLASSES["color2"].index("blue")]
    assert t["context"].tolist() == [0, 0]
