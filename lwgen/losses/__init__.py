"""Pure loss functions ``loss(...) -> (scalar, aux_dict)``."""
