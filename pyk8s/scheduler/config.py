"""KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1): profiles, their plugins and plugin args.

Extension points honoured: multiPoint, preEnqueue, filter (a plugin's PreFilter runs with its Filter),
postFilter (DefaultPreemption), score (with weights; PreScore runs with Score). queueSort, reserve, permit
and the binding points are accepted and have their one built-in behaviour. `parallelism` is ignored (one
event loop).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .framework import Framework
from .plugins import BUILT_IN, DEFAULT_PLUGINS, REGISTRY, ArgsError, PluginHandle
from .preemption import DefaultPreemption, PDBLister

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"
KNOWN_POINTS = ("multiPoint", "preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score",
                "reserve", "permit", "preBind", "bind", "postBind")


class ConfigError(ValueError):
    """An invalid scheduler configuration (the message names the field, like upstream's validation)."""


@dataclass
class Profile:
    scheduler_name: str
    pre_enqueue: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    post_filter: list[str] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)  # name -> weight, in order
    args: dict[str, Mapping] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None


@dataclass
class SchedulerConfig:
    profiles: list[Profile]
    percentage_of_nodes_to_score: int | None = None


def _probe(name: str) -> object | None:
    factory = REGISTRY.get(name)
    return factory({}, PluginHandle()) if factory else None


def _points_of(name: str) -> set[str]:
    """The extension points a plugin implements."""
    if name == "DefaultPreemption":
        return {"postFilter"}
    plugin = _probe(name)
    points = set()
    if plugin is None:
        return points
    if hasattr(plugin, "pre_enqueue"):
        points.add("preEnqueue")
    if hasattr(plugin, "filter"):
        points.add("filter")
    if hasattr(plugin, "score"):
        points.add("score")
    return points


def default_profile(name: str = DEFAULT_SCHEDULER_NAME) -> Profile:
    profile = Profile(name)
    for plugin, weight in DEFAULT_PLUGINS:
        points = _points_of(plugin)
        if "preEnqueue" in points:
            profile.pre_enqueue.append(plugin)
        if "filter" in points:
            profile.filters.append(plugin)
        if "postFilter" in points:
            profile.post_filter.append(plugin)
        if weight:
            profile.scores[plugin] = weight
    return profile


def _check_name(name: str, path: str) -> None:
    if name not in REGISTRY and name not in BUILT_IN:
        raise ConfigError(f"{path}: Invalid value: \"{name}\": plugin \"{name}\" does not exist")


def _apply_point(profile: Profile, point: str, cfg: Mapping, path: str) -> None:
    targets = {"preEnqueue": profile.pre_enqueue, "filter": profile.filters, "postFilter": profile.post_filter}
    disabled = [d.get("name", "") for d in cfg.get("disabled") or []]
    enabled = cfg.get("enabled") or []
    if point == "score":
        if "*" in disabled:
            profile.scores.clear()
        for name in disabled:
            profile.scores.pop(name, None)
        for i, e in enumerate(enabled):
            name = e.get("name", "")
            _check_name(name, f"{path}.enabled[{i}]")
            default_weight = dict(DEFAULT_PLUGINS).get(name) or 1
            profile.scores[name] = int(e.get("weight") or profile.scores.get(name) or default_weight)
        return
    target = targets.get(point)
    if target is None:  # preFilter/preScore follow filter/score; the rest have one built-in behaviour
        for i, e in enumerate(enabled):
            _check_name(e.get("name", ""), f"{path}.enabled[{i}]")
        return
    if "*" in disabled:
        target.clear()
    target[:] = [n for n in target if n not in disabled]
    for i, e in enumerate(enabled):
        name = e.get("name", "")
        _check_name(name, f"{path}.enabled[{i}]")
        if name not in target:
            target.append(name)


def _apply_multi_point(profile: Profile, cfg: Mapping, path: str) -> None:
    disabled = [d.get("name", "") for d in cfg.get("disabled") or []]
    if "*" in disabled:
        profile.pre_enqueue.clear()
        profile.filters.clear()
        profile.post_filter.clear()
        profile.scores.clear()
    for name in disabled:
        for lst in (profile.pre_enqueue, profile.filters, profile.post_filter):
            if name in lst:
                lst.remove(name)
        profile.scores.pop(name, None)
    for i, e in enumerate(cfg.get("enabled") or []):
        name = e.get("name", "")
        _check_name(name, f"{path}.enabled[{i}]")
        points = _points_of(name)
        for point, lst in (("preEnqueue", profile.pre_enqueue), ("filter", profile.filters),
                           ("postFilter", profile.post_filter)):
            if point in points and name not in lst:
                lst.append(name)
        if "score" in points:
            profile.scores[name] = int(e.get("weight") or profile.scores.get(name) or dict(DEFAULT_PLUGINS)
                                       .get(name) or 1)


def _percentage(value: object, path: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"{path}: Invalid value: {value}: not in valid range [0-100]")
    return value


def parse_config(doc: Mapping) -> SchedulerConfig:
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ConfigError(f"no kind \"{doc.get('kind')}\" is registered for version \"{doc.get('apiVersion')}\": "
                          f"expected {API_VERSION} {KIND}")
    pct = _percentage(doc.get("percentageOfNodesToScore"), "percentageOfNodesToScore")
    profiles: list[Profile] = []
    names: set[str] = set()
    for i, p in enumerate(doc.get("profiles") or [{}]):
        path = f"profiles[{i}]"
        name = p.get("schedulerName") or DEFAULT_SCHEDULER_NAME
        if name in names:
            raise ConfigError(f"{path}.schedulerName: Duplicate value: \"{name}\"")
        names.add(name)
        profile = default_profile(name)
        plugins = p.get("plugins") or {}
        for point in plugins:
            if point not in KNOWN_POINTS:
                raise ConfigError(f"{path}.plugins: unknown field \"{point}\"")
        if "multiPoint" in plugins:
            _apply_multi_point(profile, plugins["multiPoint"] or {}, f"{path}.plugins.multiPoint")
        for point in KNOWN_POINTS[1:]:
            if point in plugins:
                _apply_point(profile, point, plugins[point] or {}, f"{path}.plugins.{point}")
        for j, pc in enumerate(p.get("pluginConfig") or []):
            plugin = pc.get("name", "")
            _check_name(plugin, f"{path}.pluginConfig[{j}].name")
            if plugin in profile.args:
                raise ConfigError(f"{path}.pluginConfig[{j}]: Duplicate value: \"{plugin}\"")
            profile.args[plugin] = pc.get("args") or {}
        profile.percentage_of_nodes_to_score = _percentage(p.get("percentageOfNodesToScore"),
                                                           f"{path}.percentageOfNodesToScore")
        profiles.append(profile)
    return SchedulerConfig(profiles, pct)


def load_config(path: Path) -> SchedulerConfig:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"reading scheduler configuration {path}: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"scheduler configuration {path}: not a KubeSchedulerConfiguration object")
    config = parse_config(doc)
    # Build every profile once so that bad plugin args fail at start-up, not on the first pod.
    for profile in config.profiles:
        build_framework(profile, PluginHandle(), None, config.percentage_of_nodes_to_score)
    return config


def build_framework(profile: Profile, handle: PluginHandle, pdbs: PDBLister | None,
                    percentage_of_nodes_to_score: int | None = None, rng: random.Random | None = None) -> Framework:
    instances: dict[str, object] = {}

    def make(name: str) -> object:
        if name not in instances:
            try:
                instances[name] = REGISTRY[name](profile.args.get(name) or {}, handle)
            except ArgsError as exc:
                raise ConfigError(f"profiles[{profile.scheduler_name}].pluginConfig[{name}].args.{exc}") from exc
        return instances[name]

    preemption = None
    if "DefaultPreemption" in profile.post_filter:
        try:
            preemption = DefaultPreemption(profile.args.get("DefaultPreemption"), pdbs, rng)
        except ArgsError as exc:
            raise ConfigError(f"profiles[{profile.scheduler_name}].pluginConfig[DefaultPreemption].args.{exc}") \
                from exc
    filters = [make(n) for n in profile.filters if n in REGISTRY and hasattr(make(n), "filter")]
    scorers = [make(n) for n in profile.scores if n in REGISTRY and hasattr(make(n), "score")]
    pre_enqueue = [make(n) for n in profile.pre_enqueue if n in REGISTRY and hasattr(make(n), "pre_enqueue")]
    pct = profile.percentage_of_nodes_to_score
    return Framework(filters, scorers, pre_enqueue=pre_enqueue, weights=dict(profile.scores),
                     percentage_of_nodes_to_score=pct if pct is not None else percentage_of_nodes_to_score,
                     preemption=preemption, scheduler_name=profile.scheduler_name, rng=rng)
