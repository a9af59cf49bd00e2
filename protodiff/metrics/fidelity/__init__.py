"""FID and KID: generated against real images in a registered feature space, through torch-fidelity."""
