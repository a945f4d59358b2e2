"""GPIO for driver tests: gpiozero's own MockFactory with PWM-capable pins, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pin_factory = MockFactory(pin_class=MockPWMPin)
    yield pin_factory
    pin_factory.close()
