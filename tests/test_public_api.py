"""The package's public surface imports, and says what it exports."""

import notifier


def test_every_public_name_imports() -> None:
    for name in notifier.__all__:
        assert getattr(notifier, name) is not None, name


def test_version_is_a_string() -> None:
    assert isinstance(notifier.__version__, str) and notifier.__version__.count(".") == 2
