from .clip import CLIPModel  # noqa: F401
from .model_animate import WanAnimateModel  # noqa: F401
