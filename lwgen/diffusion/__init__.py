"""Diffusion schedules (``schedules``) and samplers (``samplers``), shared by the diffusion
family, its evaluation and its export."""
