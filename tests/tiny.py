"""A tiny 16×16 digits GAN config used across tests (also importable from subprocesses)."""

from lwgen.families.conditional_gan import gan_config


def tiny_gan_config(num_train_steps: int = 4):
    """Width-4 G and D on 16×16 digits, batch 8, checkpoints every 2 steps."""
    config = gan_config("digits", num_classes=10, image_shape=(16, 16, 1), base_width=4)
    config.model.generator.latent_dim = 8
    config.model.discriminator.num_blocks = 2
    config.num_train_steps = num_train_steps
    config.batch_size = 8
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    return config


def get_config():
    """Entry point for launchers: ``--config=tests/tiny.py``."""
    return tiny_gan_config()
