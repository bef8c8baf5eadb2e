"""A custom PromQL check may read its own namespace only.

The operator runs every custom query with its own access to Prometheus, which sees every namespace.
So each series selector of a query must carry the exact matcher ``namespace="<the ModelDeployment's
namespace>"`` (write ``namespace="{{namespace}}"``): a regex or a missing matcher could read another
tenant's metrics. The query is parsed (promql-parser, the Rust parser Prometheus-compatible tools
use), never pattern-matched as text.
"""

from __future__ import annotations

from typing import Any

import promql_parser

# What the placeholders stand for while a template is checked before any revision exists.
_SAMPLE_VALUES = {"namespace": "__modeldeploy_namespace__", "name": "sample", "revision": "sample-00000",
                  "interval": "1m"}
TEMPLATE_NAMESPACE = _SAMPLE_VALUES["namespace"]


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _scoped(matchers: Any, namespace: str) -> bool:
    return any(m.name == "namespace" and m.op == promql_parser.MatchOp.Equal and m.value == namespace
               for m in matchers)


def namespace_problems(promql: str, namespace: str) -> list[str]:
    """Why `promql` may read outside `namespace` ([] when every selector is pinned to it)."""
    try:
        expression = promql_parser.parse(promql)
    except (ValueError, RuntimeError) as error:
        return [f"not valid PromQL: {' '.join(str(error).split())[:200]}"]
    problems: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            groups = node.matchers.or_matchers or [node.matchers.matchers]
            if not all(_scoped(group, namespace) for group in groups):
                name = node.name or "a selector"
                problems.append(f'{name} must select namespace="{{{{namespace}}}}" exactly (no regex, no other '
                                "namespace): the operator's Prometheus access must not read other namespaces")
        return True

    promql_parser.walk(expression, visit)
    return problems


def template_problems(template: str) -> list[str]:
    """namespace_problems of a check's query template, placeholders filled with sample values."""
    return namespace_problems(_fill(template, _SAMPLE_VALUES), TEMPLATE_NAMESPACE)
