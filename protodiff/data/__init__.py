"""Dataset sources: the official on-disk formats (fmnist, cifar10, celeba, ffhq, chexpert), a
folder of images, and the bundled sets (shapes, digits). Each module registers its source; the
contract is :mod:`protodiff.contracts.dataset`."""
