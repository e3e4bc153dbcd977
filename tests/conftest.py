"""Shared pytest configuration: one hypothesis profile for the whole suite.

``deadline=None`` because the machines are shared and noisy (speed is measured in
bench/, never in tests). ``HYPOTHESIS_PROFILE=thorough`` runs more examples.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
