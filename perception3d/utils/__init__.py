"""Small library utilities: atomic file writes (:mod:`.atomic`), per-stage timing by forward hooks
(:mod:`.stage_timer`)."""
