"""Forms for datasets and fine-tune jobs."""

from __future__ import annotations

from typing import Any

from django import forms

from jobs_app.finetune.catalog import BaseModelChoice
from jobs_app.finetune.models import Dataset, FineTuneMethod
from project.providers.model_facts import known_model_ids, model_facts
from project.providers.models import ProviderConnection
from project.user_input import UserJSONError, loads_user_json

MAX_METADATA_PAIRS = 16


def _finetunable_fact_ids() -> list[tuple[str, str]]:
    return [(m, m) for m in known_model_ids() if model_facts(m).fine_tuning_methods]


class DatasetUploadForm(forms.Form):
    method = forms.ChoiceField(choices=FineTuneMethod.choices, initial=FineTuneMethod.SUPERVISED)
    model_id = forms.ChoiceField(label="Model (for token counts and its training context)", choices=())
    training_file = forms.FileField(label="Training file (.jsonl)")
    validation_file = forms.FileField(label="Validation file (.jsonl, optional)", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model_id"].choices = _finetunable_fact_ids()  # type: ignore[attr-defined]
        self.fields["model_id"].initial = "gpt-4.1-mini"

    def clean_training_file(self) -> Any:
        upload = self.cleaned_data["training_file"]
        if not upload.name.lower().endswith((".jsonl", ".json")):
            raise forms.ValidationError("The training file must be a .jsonl file.")
        return upload

    def clean_validation_file(self) -> Any:
        upload = self.cleaned_data.get("validation_file")
        if upload and not upload.name.lower().endswith((".jsonl", ".json")):
            raise forms.ValidationError("The validation file must be a .jsonl file.")
        return upload


def _hyper_field(label: str, *, integer: bool, min_value: float, max_value: float) -> forms.Field:
    help_text = f'"auto" or a value between {min_value:g} and {max_value:g}.'
    return forms.CharField(label=label, initial="auto", required=False, help_text=help_text, max_length=20)


HYPER_LIMITS: dict[str, tuple[bool, float, float]] = {
    "n_epochs": (True, 1, 50),
    "batch_size": (True, 1, 256),
    "learning_rate_multiplier": (False, 1e-6, 100),
    "beta": (False, 1e-6, 2),
}


class JobCreateForm(forms.Form):
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), empty_label=None)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None, label="Training dataset")
    validation_dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), required=False,
                                                label="Validation dataset (optional)")
    base_model = forms.ChoiceField(choices=())
    method = forms.ChoiceField(choices=FineTuneMethod.choices)
    n_epochs = _hyper_field("Epochs", integer=True, min_value=1, max_value=50)
    batch_size = _hyper_field("Batch size", integer=True, min_value=1, max_value=256)
    learning_rate_multiplier = _hyper_field("Learning rate multiplier", integer=False, min_value=1e-6, max_value=100)
    beta = _hyper_field("Beta (DPO only)", integer=False, min_value=1e-6, max_value=2)
    suffix = forms.CharField(required=False, max_length=64, help_text="Up to 64 characters, added to the model name.")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    metadata = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text='Optional JSON object of strings, e.g. {"project": "support-bot"}.')

    def __init__(self, *args: Any, connections: Any, datasets: Any, validation_datasets: Any,
                 base_models: list[BaseModelChoice], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections  # type: ignore[attr-defined]
        self.fields["dataset"].queryset = datasets  # type: ignore[attr-defined]
        self.fields["validation_dataset"].queryset = validation_datasets  # type: ignore[attr-defined]
        self.base_models = {choice.model_id: choice for choice in base_models}
        self.fields["base_model"].choices = [(m.model_id, m.model_id) for m in base_models]  # type: ignore[attr-defined]

    def clean_suffix(self) -> str:
        suffix = str(self.cleaned_data.get("suffix") or "")
        if suffix and not all(ch.isalnum() or ch in "-_" for ch in suffix):
            raise forms.ValidationError("Use letters, digits, - and _ only.")
        return suffix

    def clean_metadata(self) -> dict[str, str]:
        raw = str(self.cleaned_data.get("metadata") or "").strip()
        if not raw:
            return {}
        try:
            data = loads_user_json(raw)
        except UserJSONError as error:
            raise forms.ValidationError(f"Metadata is not valid JSON: {error}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise forms.ValidationError("Metadata must be a JSON object whose values are strings.")
        if len(data) > MAX_METADATA_PAIRS:
            raise forms.ValidationError(f"At most {MAX_METADATA_PAIRS} metadata keys.")
        return {str(k)[:64]: v[:512] for k, v in data.items()}

    def hyperparameters(self) -> dict[str, int | float | str]:
        out: dict[str, int | float | str] = {}
        for name, (integer, low, high) in HYPER_LIMITS.items():
            raw = str(self.cleaned_data.get(name) or "auto").strip().lower()
            if raw == "auto":
                continue
            if name == "beta" and self.cleaned_data.get("method") != FineTuneMethod.DPO:
                continue
            try:
                value: int | float = int(raw) if integer else float(raw)
            except ValueError:
                self.add_error(name, f'Enter "auto" or a {"whole " if integer else ""}number.')
                continue
            if not low <= value <= high:
                self.add_error(name, f"Must be between {low:g} and {high:g}.")
                continue
            out[name] = value
        return out

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        dataset = cleaned.get("dataset")
        method = cleaned.get("method")
        model = cleaned.get("base_model")
        if dataset is not None and method and dataset.method != method:
            self.add_error("method", f"The dataset was validated for {dataset.get_method_display()}.")
        validation = cleaned.get("validation_dataset")
        if validation is not None and method and validation.method != method:
            self.add_error("validation_dataset", f"This dataset was validated for {validation.get_method_display()}.")
        if model and method and model in self.base_models and method not in self.base_models[model].methods:
            self.add_error("method", f"{model} cannot be fine-tuned with {method}.")
        cleaned["hyperparameters"] = self.hyperparameters()
        return cleaned
