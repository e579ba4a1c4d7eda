#!/usr/bin/env python3
"""Reference timing of lrmf's models in PyTorch and Opacus (CPU), for comparison with
`cargo xtask bench-train` (which runs this script with --json when given --python).

Same network as `lrmf_train::model::Cnn` with `CnnConfig::cifar10(group_norm)`: three blocks of
two 3x3 convolutions (padding 1) + ReLU + 2x2 max pool (widths 32, 64, 128), optional
GroupNorm(16, C) after each convolution, then Linear(2048 -> 10); batch 256 of random 3x32x32
images. The IMDB text model as `lrmf_train::model::TextClassifier`: Embedding(10000, 64) averaged
over the non-padding tokens of 256-token rows, then Linear(64 -> 2). Times, per step: the
non-private forward + backward, Opacus per-example clipping with hooks
(`grad_sample_mode="hooks"`) and with ghost clipping (`grad_sample_mode="ghost"`); with --json one
JSON line per measurement {"model", "variant", "wall_s", "cpu_s"} (cpu_s: process CPU seconds per
step, all threads), or {"model", "variant", "error"} when Opacus refuses a model.

Not run in CI (it needs torch and opacus). Usage, in a throwaway virtual environment:
    python3 -m venv /tmp/opacus-venv && /tmp/opacus-venv/bin/pip install torch opacus
    /tmp/opacus-venv/bin/python scripts/opacus_bench.py --threads 2 --steps 5
"""

import argparse
import json
import statistics
import time


def make_model(group_norm: bool):
    import torch.nn as nn

    layers = []
    cin = 3
    for width in (32, 64, 128):
        for _ in range(2):
            layers.append(nn.Conv2d(cin, width, 3, padding=1))
            if group_norm:
                layers.append(nn.GroupNorm(16, width))
            layers.append(nn.ReLU())
            cin = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 10)]
    return nn.Sequential(*layers)


class MeanText:
    """Embedding averaged over the non-padding tokens, then a linear layer (lrmf's text model)."""

    @staticmethod
    def make():
        import torch.nn as nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(10000, 64)
                self.fc = nn.Linear(64, 2)

            def forward(self, tokens):
                mask = (tokens > 0).unsqueeze(-1).float()
                summed = (self.emb(tokens) * mask).sum(1)
                return self.fc(summed / mask.sum(1).clamp(min=1.0))

        return Model()


def text_batch(batch: int):
    """Rows of 256 tokens with 64..256 real tokens (ids 1..9999), the rest padding 0."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(batch, 256, dtype=torch.long)
    used = torch.randint(64, 257, (batch,), generator=g)
    for i in range(batch):
        x[i, : used[i]] = torch.randint(1, 10000, (int(used[i]),), generator=g)
    y = torch.randint(0, 2, (batch,), generator=g)
    return x, y


def timed(step, steps: int, warmup: int = 1):
    """Median wall seconds of one step (robust to a noisy neighbour), mean CPU seconds."""
    for _ in range(warmup):
        step()
    cpu = time.process_time()
    walls = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu) / steps


def report(args, model: str, variant: str, wall: float, cpu: float, label: str) -> None:
    if args.json:
        print(json.dumps({"model": model, "variant": variant, "wall_s": wall, "cpu_s": cpu}))
    else:
        print(f"{label}: {wall:.3f} s/step (CPU {cpu:.3f} s), {args.batch / wall:.1f} examples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args()

    import torch
    import torch.nn as nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")

    images = (torch.rand(args.batch, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (args.batch,)))
    cases = [
        ("cnn", lambda: make_model(False), images),
        ("cnn_gn", lambda: make_model(True), images),
        ("text", MeanText.make, text_batch(args.batch)),
    ]
    for name, make, (x, y) in cases:
        model = make()

        def plain_step():
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()

        wall, cpu = timed(plain_step, args.steps)
        report(args, name, "torch", wall, cpu, f"{name} torch non-private")
        try:
            from opacus import PrivacyEngine
        except ImportError:
            print("opacus not installed; skipping the private steps")
            continue
        for mode in ("hooks", "ghost"):
            try:
                wall, cpu = time_opacus(make, x, y, mode, args)
            except Exception as e:  # Opacus refuses some layer/mode pairs: say so, go on.
                if args.json:
                    print(json.dumps({"model": name, "variant": mode, "error": str(e)[:200]}))
                else:
                    print(f"{name} opacus {mode}: not supported ({e})")
                continue
            report(args, name, mode, wall, cpu, f"{name} opacus {mode}")


def time_opacus(make, x, y, mode: str, args):
    import torch
    import torch.nn as nn
    from opacus import PrivacyEngine

    model = make()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch
    )
    engine = PrivacyEngine()
    kwargs = dict(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode=mode,
    )
    if mode == "ghost":
        model, optimizer, criterion, loader = engine.make_private(
            criterion=nn.CrossEntropyLoss(), **kwargs
        )

        def private_step():
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()

    else:
        model, optimizer, loader = engine.make_private(**kwargs)

        def private_step():
            optimizer.zero_grad(set_to_none=True)
            nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()

    return timed(private_step, args.steps)


if __name__ == "__main__":
    main()
