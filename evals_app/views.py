"""Eval pages: test sets (cases, graders, versions), runs (estimate, live progress, the
side-by-side table, exports, re-run failed), and the migration assistant."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from assistants_app import conversation as chat
from evals_app import cases, exports, migration, selectors, services
from evals_app import graders as g
from evals_app.forms import GraderForm, HandCaseForm, RunForm, TestSetForm, ThresholdForm, UploadForm
from evals_app.models import TestSet
from evals_app.services import EvalError, TargetChoice
from project.providers.model_facts import known_model_ids, model_facts
from project.providers.selectors import team_connection_get, team_connections
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role
from project.upload_limits import upload_limit
from project.user_input import parse_id

TABLE_ROWS = 500


@team_view()
def eval_home(request: TeamRequest) -> HttpResponse:
    if request.method == "POST":
        return _set_create(request)
    form = TestSetForm(assistants=chat.team_assistants(team=request.team))
    return _home(request, form)


def _home(request: TeamRequest, form: TestSetForm, status: int = 200) -> HttpResponse:
    context = {"sets": selectors.team_test_sets(team=request.team), "form": form,
               "runs": selectors.team_runs(team=request.team)[:20],
               "retiring": migration.team_shutdown_rows(team=request.team)}
    return render(request, "evals_app/home.html", context, status=status)


def _set_create(request: TeamRequest) -> HttpResponse:
    form = TestSetForm(request.POST, assistants=chat.team_assistants(team=request.team))
    if form.is_valid():
        try:
            test_set = services.test_set_create(team=request.team, actor=request.user, name=form.cleaned_data["name"],
                                                description=form.cleaned_data["description"],
                                                assistant=form.cleaned_data["assistant"])
        except EvalError as error:
            form.add_error(None, str(error))
        else:
            return redirect("eval_set_detail", test_set.pk)
    return _home(request, form, status=400)


def _set_context(request: TeamRequest, test_set: TestSet, **extra: Any) -> dict[str, Any]:
    version = test_set.current_version
    assert version is not None
    graders = g.parse_graders(version.graders)
    return {"test_set": test_set, "version": version, "graders": graders,
            "cases": selectors.version_cases(version=version)[:TABLE_ROWS],
            "versions": test_set.versions.select_related("created_by")[:20], "runs": selectors.set_runs(test_set=test_set)[:20],
            "case_form": HandCaseForm(), "grader_form": GraderForm(), "upload_form": UploadForm(),
            "threshold_form": ThresholdForm(initial={"pass_threshold": version.pass_threshold}), **extra}


@team_view()
def eval_set_detail(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    if request.method == "POST":
        form = HandCaseForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                draft = cases.case_by_hand(question=data["question"], expected_text=data["expected_text"],
                                           expected_json=data["expected_json"], expected_tool_call=data["expected_tool_call"],
                                           tool_results=data["tool_results"], rubric=data["rubric"], name=data["name"])
                services.test_set_add_cases(test_set=test_set, actor=request.user, drafts=[draft], note="added a case")
            except cases.CasesInvalid as invalid:
                form.add_error(None, "; ".join(invalid.problems))
            else:
                messages.success(request, "Case added: the set is now at a new version.")
                return redirect("eval_set_detail", test_set.pk)
        return render(request, "evals_app/set_detail.html", _set_context(request, test_set, case_form=form), status=400)
    return render(request, "evals_app/set_detail.html", _set_context(request, test_set))


@team_view(Role.MEMBER)
@require_POST
def eval_case_remove(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    try:
        services.test_set_remove_case(test_set=test_set, actor=request.user, case_key=request.POST.get("key", "")[:40])
    except EvalError as error:
        messages.error(request, str(error))
    return redirect("eval_set_detail", test_set.pk)


@team_view(Role.MEMBER)
@require_POST
def eval_grader_add(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    form = GraderForm(request.POST)
    if form.is_valid():
        try:
            services.test_set_add_grader(test_set=test_set, actor=request.user, grader=form.grader())
        except (EvalError, g.GraderError) as error:
            form.add_error(None, str(error))
        except forms.ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Grader added: the set is now at a new version.")
            return redirect("eval_set_detail", test_set.pk)
    return render(request, "evals_app/set_detail.html", _set_context(request, test_set, grader_form=form), status=400)


@team_view(Role.MEMBER)
@require_POST
def eval_grader_remove(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    index = parse_id(request.POST.get("index"))
    try:
        services.test_set_remove_grader(test_set=test_set, actor=request.user, index=(index or 0) - 1)
    except EvalError as error:
        messages.error(request, str(error))
    return redirect("eval_set_detail", test_set.pk)


@team_view(Role.MEMBER)
@require_POST
def eval_threshold(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    form = ThresholdForm(request.POST)
    version = test_set.current_version
    if form.is_valid() and version is not None:
        services.test_set_set_graders(test_set=test_set, actor=request.user, graders=list(version.graders),
                                      pass_threshold=form.cleaned_data["pass_threshold"], note="pass threshold changed")
        return redirect("eval_set_detail", test_set.pk)
    return render(request, "evals_app/set_detail.html", _set_context(request, test_set, threshold_form=form), status=400)


@team_view(Role.MEMBER)
def eval_set_threads(request: TeamRequest, set_id: int) -> HttpResponse:
    """Pick threads, and a reply of each (its last by default): the history up to the reply is
    the case's input, the reply its expected answer."""
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    threads = chat.team_threads(team=request.team).order_by("-updated_at", "-id")
    assistant_id = parse_id(request.GET.get("assistant"))
    if assistant_id:
        threads = threads.filter(assistant_id=assistant_id)
    problems: list[str] = []
    if request.method == "POST":
        chosen_ids = [i for i in (parse_id(v) for v in request.POST.getlist("threads")) if i]
        chosen = {t.pk: t for t in chat.team_threads(team=request.team).filter(pk__in=chosen_ids)}
        picks = [(chosen[i], parse_id(request.POST.get(f"turn-{i}"))) for i in chosen_ids if i in chosen]
        if not picks:
            problems.append("Choose at least one thread.")
        else:
            try:
                version = services.test_set_from_threads(test_set=test_set, actor=request.user, picks=picks)
            except cases.CasesInvalid as invalid:
                problems = invalid.problems
            else:
                messages.success(request, f"Added {len(picks)} case{'s' if len(picks) != 1 else ''} from threads "
                                          f"(version {version.number}).")
                return redirect("eval_set_detail", test_set.pk)
    rows = [(thread, cases.thread_turns(thread)) for thread in threads[:50]]
    context = {"test_set": test_set, "rows": rows, "problems": problems,
               "assistants": chat.team_assistants(team=request.team), "assistant_id": assistant_id}
    return render(request, "evals_app/set_threads.html", context, status=400 if problems else 200)


@team_view(Role.MEMBER)
@require_POST
@upload_limit(UploadForm.MAX_BYTES, "Switchboard takes for a test set's cases")
def eval_set_upload(request: TeamRequest, set_id: int) -> HttpResponse:
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        upload = data["file"]
        try:
            if (upload.name or "").lower().endswith(".csv"):
                mapping = cases.CsvMapping(template=data["template"], expected_column=data["expected_column"].strip(),
                                           expected_json_column=data["expected_json_column"].strip(),
                                           rubric_column=data["rubric_column"].strip(), name_column=data["name_column"].strip())
                drafts = cases.cases_from_csv(cases.text_stream(upload.file), mapping)
            else:
                drafts = cases.cases_from_jsonl(upload.file)
            version = services.test_set_add_cases(test_set=test_set, actor=request.user, drafts=drafts,
                                                  note=f"added {len(drafts)} cases from {upload.name}"[:200])
        except cases.CasesInvalid as invalid:
            form.add_error(None, f"{upload.name} was not added: " + " ".join(invalid.problems))
        else:
            messages.success(request, f"Added {len(drafts)} cases from {upload.name} (version {version.number}).")
            return redirect("eval_set_detail", test_set.pk)
    return render(request, "evals_app/set_detail.html", _set_context(request, test_set, upload_form=form), status=400)


# -- runs ------------------------------------------------------------------------------------------

def _chat_models() -> list[str]:
    return [m for m in known_model_ids() if "chat_completions" in model_facts(m).endpoints]


def _targets_from(request: TeamRequest) -> list[TargetChoice]:
    """Rows of (version, model): an empty model is the version's own."""
    choices = []
    for raw_version, raw_model in zip(request.POST.getlist("target_version"), request.POST.getlist("target_model"),
                                      strict=False):
        version_id = parse_id(raw_version)
        if version_id is None:
            continue
        version = chat.team_version_get(team=request.team, version_id=version_id)
        model = raw_model.strip()[:200] or version.model
        if any(ch.isspace() for ch in model):
            raise EvalError("That is not a model id.")
        choices.append(TargetChoice(version, model))
    return choices


@team_view(Role.MEMBER)
def eval_run_new(request: TeamRequest, set_id: int) -> HttpResponse:
    """Choose targets; "Estimate" shows tokens and cost, "Start" starts the run."""
    test_set = selectors.team_test_set_get(team=request.team, set_id=set_id)
    version = test_set.current_version
    assert version is not None
    connections = team_connections(team=request.team)
    form = RunForm(request.POST or None, connections=connections)
    assistants = [a for a in chat.team_assistants(team=request.team) if a.current_version is not None]
    context: dict[str, Any] = {"test_set": test_set, "version": version, "form": form, "assistants": assistants,
                               "models": _chat_models(), "chosen": []}
    if request.method == "POST" and form.is_valid():
        try:
            targets = _targets_from(request)
            context["chosen"] = targets
            arguments = {"team": request.team, "version": version, "connection": form.cleaned_data["connection"],
                         "targets": targets, "mode": form.cleaned_data["mode"]}
            if request.POST.get("action") == "start":
                run = services.eval_run_create(actor=request.user, concurrency=form.cleaned_data["concurrency"], **arguments)
                return redirect("eval_run_detail", run.pk)
            context.update(services.eval_estimate(**arguments))
        except EvalError as error:
            form.add_error(None, str(error))
    elif request.method != "POST" and test_set.assistant_id:
        own = next((a for a in assistants if a.pk == test_set.assistant_id), None)
        context["chosen"] = [TargetChoice(own.current_version, own.current_version.model)] if own and own.current_version else []
    chosen = [(t.version.pk, "" if t.model == t.version.model else t.model) for t in context["chosen"]]
    context["rows"] = chosen + [(None, "")] * max(1, 3 - len(chosen))
    status = 400 if form.errors else 200
    return render(request, "evals_app/run_new.html", context, status=status)


@team_view()
def eval_run_detail(request: TeamRequest, run_id: int) -> HttpResponse:
    run = selectors.team_run_get(team=request.team, run_id=run_id)
    show = request.GET.get("show", "all")
    show = show if show in selectors.CASE_FILTERS else "all"
    finished, total = selectors.run_progress(run=run)
    context = {"run": run, "figures": selectors.run_figures(run=run), "finished": finished, "total": total,
               "percent": int(finished * 100 / total) if total else 100, "show": show, "filters": selectors.CASE_FILTERS,
               "rows": selectors.run_case_rows(run=run, show=show, limit=TABLE_ROWS)}
    if request.htmx and request.htmx.target == "run-live":
        response = render(request, "evals_app/run_detail.html#live", context)
        if not run.is_active:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "evals_app/run_detail.html", context)


@team_view()
def eval_run_csv(request: TeamRequest, run_id: int) -> HttpResponse:
    run = selectors.team_run_get(team=request.team, run_id=run_id)
    return exports.run_csv_response(run)  # type: ignore[return-value]  # streamed; the decorator only passes it through


@team_view()
def eval_run_jsonl(request: TeamRequest, run_id: int) -> HttpResponse:
    run = selectors.team_run_get(team=request.team, run_id=run_id)
    return exports.run_jsonl_response(run)  # type: ignore[return-value]


@team_view(Role.MEMBER)
@require_POST
def eval_run_rerun(request: TeamRequest, run_id: int) -> HttpResponse:
    run = selectors.team_run_get(team=request.team, run_id=run_id)
    try:
        new = services.eval_run_rerun_failed(run=run, actor=request.user)
    except EvalError as error:
        messages.error(request, str(error))
        return redirect("eval_run_detail", run.pk)
    return redirect("eval_run_detail", new.pk)


@team_view(Role.MEMBER)
@require_POST
def eval_switch(request: TeamRequest, target_id: int) -> HttpResponse:
    target = selectors.team_target_get(team=request.team, target_id=target_id)
    try:
        version = services.eval_switch_model(target=target, actor=request.user)
    except EvalError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{target.version.assistant.name} now uses {target.model} "
                                  f"(version {version.number}, with this run as its evidence).")
    return redirect("eval_run_detail", target.run_id)


# -- the migration assistant ------------------------------------------------------------------------

@team_view()
def eval_shutdowns(request: TeamRequest) -> HttpResponse:
    rows = migration.team_shutdown_rows(team=request.team)
    fine_tuned = migration.team_fine_tuned_rows(team=request.team, shutdown_rows=rows)
    return render(request, "evals_app/shutdowns.html", {"rows": rows, "fine_tuned": fine_tuned,
                                                        "warn_days": migration.WARN_DAYS})


@team_view(Role.MEMBER)
def eval_migrate(request: TeamRequest, assistant_id: int) -> HttpResponse:
    """Find a replacement: candidates of the same tier, run the assistant's test set (made from
    its recent threads when it has none) against its version and each chosen candidate."""
    assistant = chat.team_assistant_get(team=request.team, assistant_id=assistant_id)
    version = assistant.current_version
    if version is None:
        messages.error(request, "This assistant has no version yet.")
        return redirect("eval_shutdowns")
    candidates = migration.replacement_candidates(version.model)
    sets = selectors.team_test_sets(team=request.team).filter(assistant=assistant)
    errors: list[str] = []
    if request.method == "POST":
        picked = [m for m in request.POST.getlist("candidates") if m in {c.model_id for c in candidates}]
        connection_id = parse_id(request.POST.get("connection"))
        try:
            if not picked:
                raise EvalError("Choose at least one candidate model.")
            if connection_id is None and assistant.connection_id is None:
                raise EvalError("Choose a connection.")
            connection = team_connection_get(team=request.team, connection_id=connection_id or assistant.connection_id or 0)
            set_id = parse_id(request.POST.get("test_set"))
            test_set = sets.filter(pk=set_id).first() if set_id else None
            run = services.migration_run_start(team=request.team, actor=request.user, assistant=assistant,
                                               test_set=test_set, candidates=picked, connection=connection)
        except (EvalError, cases.CasesInvalid) as error:
            errors.append(str(error))
        else:
            return redirect("eval_run_detail", run.pk)
    context = {"assistant": assistant, "version": version, "candidates": candidates, "sets": sets, "errors": errors,
               "days_left": migration.days_left(version.model), "shutdown": migration.shutdown_date(version.model),
               "connections": team_connections(team=request.team),
               "runs": selectors.migration_runs(team=request.team, assistant_id=assistant.pk)[:10]}
    return render(request, "evals_app/migrate.html", context, status=400 if errors else 200)
