from tests.portal.conftest import portal  # noqa: F401  # signed-in browser sessions, as the portal suite has them
