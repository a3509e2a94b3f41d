"""The tiny dataset and fast settings the tests use: MNIST's own file format, 10 classes."""

from {{ cookiecutter.package_name }}.data.sample import write_sample

# Tiny inputs and model, never the network: the files are written in MNIST's own format.
FAST_DATA = {"data.image_size": 16, "data.batch_size": 8, "model.channels": [4, 8]}
FAST_DATA |= {"data.name": "MNIST", "data.download": False}
MODEL_WIDTH_KEY = "model.channels"  # the list of ints that sizes the model


def write_tiny_sample(root):
    write_sample(root, "MNIST", train_per_class=6, test_per_class=2)  # 10 classes: 60 train, 20 test images
    return root


def write_tiny_test_split(root):
    """Nothing to add: the dataset's own test split (the t10k files) is the test split."""
    return root
