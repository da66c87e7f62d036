"""`python train.py [OPTIONS]`: the same as `churnwatch train`, as the seed project documents."""

import sys

from churnwatch.cli import app

if __name__ == "__main__":
    sys.exit(app(["train", *sys.argv[1:]]))
