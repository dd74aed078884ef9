"""MONAI Label app folder of monai_ext: ``monai-ext label --studies DIR`` starts a server with it
(``monailabel start_server --app <this folder>`` finds the app class here)."""

from monai_ext.label.app import TextPromptLabelApp  # noqa: F401 - MONAI Label looks for the MONAILabelApp subclass
