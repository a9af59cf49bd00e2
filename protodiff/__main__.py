"""``python -m protodiff`` (and ``torchrun -m protodiff train ...``)."""

from protodiff.cli import main

if __name__ == "__main__":
    main(prog_name="protodiff")
