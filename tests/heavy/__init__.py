# A package, so this folder's conftest is imported as `heavy.conftest` and never shadows the
# `conftest` module that the light tests import by name.
