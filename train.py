"""`python train.py [OPTIONS]`: the seed project's command.

With neither --data nor --store it trains on the built-in default log: 2,000 simulated users
over 120 days (seed 0), simulated on first use into `<data dir>/simulated/2000u_120d_seed0_v2/`
and kept in a store of its own there, and it says so. With either option it is
`churnwatch train` unchanged: a missing or empty store is then an error, never a reason to
invent data.
"""

import sys

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.simulate import DEFAULT_LOG, VERSION, simulate


def main(argv: list[str]) -> int:
    args = list(argv)
    own_data = any(a.split("=")[0] in ("--data", "--store") for a in args)
    if not own_data and not {"--help", "-h"} & set(args):
        # named by its parameters and the simulator's version, so that a log simulated with
        # other ones, or by another simulator, is never reused
        d = DEFAULT_LOG
        name = f"{d.users}u_{d.days}d_seed{d.seed}_v{VERSION}"
        folder = Settings().data_dir / "simulated" / name
        log = folder / "default.jsonl.gz"
        if not log.exists():
            print(
                "train.py: no --data or --store: simulating the built-in default log "
                f"({d.users:,} users, {d.days} days, seed {d.seed}) into {log}",
                flush=True,
            )
            simulate(d, log)
        else:
            print(f"train.py: no --data or --store: training on the simulated log {log}")
        args += ["--data", str(log), "--store", str(folder / "store")]
    app(["train", *args])  # exits with the command's status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
