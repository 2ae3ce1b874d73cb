# After django-stubs' django-stubs/db/models/enums.pyi, trimmed to what mypy needs to see
# Django's choices as enums whose members are str (TextChoices) or int (IntegerChoices).
import enum
from typing import Any

class ChoicesType(enum.EnumMeta):
    @property
    def names(self) -> list[str]: ...
    @property
    def choices(self) -> list[tuple[Any, str]]: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def values(self) -> list[Any]: ...

class Choices(enum.Enum, metaclass=ChoicesType):  # type: ignore[misc]
    @property
    def label(self) -> str: ...

class IntegerChoices(int, Choices):  # type: ignore[misc]
    _value_: int
    def __init__(self, *args: Any) -> None: ...
    @property
    def value(self) -> int: ...

class TextChoices(str, Choices):  # type: ignore[misc]
    _value_: str
    def __init__(self, *args: Any) -> None: ...
    @property
    def value(self) -> str: ...
