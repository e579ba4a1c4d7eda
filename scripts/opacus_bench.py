#!/usr/bin/env python3
"""Reference timing of the lrmf CIFAR-10 CNN in PyTorch and Opacus (CPU), for comparison with
`cargo bench -p lrmf-benches --bench train_step`.

Same network as `lrmf_train::model::Cnn` with `CnnConfig::cifar10(group_norm)`: three blocks of
two 3x3 convolutions (padding 1) + ReLU + 2x2 max pool (widths 32, 64, 128), optional
GroupNorm(16, C) after each convolution, then Linear(2048 -> 10); batch 256 of random 3x32x32
images. Times, per step: the non-private forward + backward, Opacus per-example clipping with
hooks (`grad_sample_mode="hooks"`) and with ghost clipping (`grad_sample_mode="ghost"`).

Not run in CI (it needs torch and opacus). Usage, in a throwaway virtual environment:
    python3 -m venv /tmp/opacus-venv && /tmp/opacus-venv/bin/pip install torch opacus
    /tmp/opacus-venv/bin/python scripts/opacus_bench.py --threads 2 --steps 5
"""

import argparse
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


def timed(step, steps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    import torch
    import torch.nn as nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (args.batch,))
    loss_fn = nn.CrossEntropyLoss(reduction="sum")

    for group_norm in (False, True):
        tag = "gn" if group_norm else "plain"
        model = make_model(group_norm)
        params = sum(p.numel() for p in model.parameters())

        def plain_step():
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()

        t = timed(plain_step, args.steps)
        print(f"{tag} params={params} torch non-private: {t:.3f} s/step, {args.batch / t:.1f} images/s")

        try:
            from opacus import PrivacyEngine
        except ImportError:
            print("opacus not installed; skipping the private steps")
            continue
        for mode in ("hooks", "ghost"):
            model = make_model(group_norm)
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

            t = timed(private_step, args.steps)
            print(f"{tag} opacus {mode}: {t:.3f} s/step, {args.batch / t:.1f} images/s")


if __name__ == "__main__":
    main()
