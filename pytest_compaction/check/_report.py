"""``check``'s results as text (a block per cassette) and as JUnit XML (a suite per cassette)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from ..contract._chain import ChainViolation
from ._results import CheckResult


def _verdict(valid: bool) -> str:
    return "pass" if valid else "FAIL"


def format_text(result: CheckResult) -> str:
    """A block per cassette, a line per exchange checked, the reasons and notes below."""
    against = result.against
    lines: list[str] = []
    if against is not None:
        lines.append(f"checked against {against}")
    for cassette in result.cassettes:
        if cassette.error is not None:
            lines.append(f"ERROR {cassette.path}")
            lines.append(f"    {cassette.error}")
            continue
        how = "recorded" if cassette.recorded_version else "assumed"
        lines.append(f"{cassette.path}  [{cassette.version}, {how}]")
        if not cassette.exchanges:
            lines.append(f"  no exchanges to check ({cassette.other} other exchange(s))")
        width = max((len(ex.name) for ex in cassette.exchanges), default=0)
        for ex in cassette.exchanges:
            if ex.against is None:
                lines.append(f"  {_verdict(ex.passed)}  {ex.name}")
                lines += [f"        {line}" for line in ex.baseline.lines()]
                lines += [f"        note: {note}" for note in ex.baseline.notes]
                continue
            verdicts = f"{_verdict(ex.baseline.valid)} -> {_verdict(ex.against.valid)}"
            lines.append(f"  {ex.name:<{width}}  {verdicts}  {ex.transition}")
            lines += [f"    cause: {cause}" for cause in ex.causes]
            if ex.transition == "still failing":
                lines += [f"    {line}" for line in ex.against.lines()]
        for violation in cassette.chain:
            lines.append(f"  FAIL  {_chain_name(violation)}")
            lines.append(f"        {violation.message}")
    s = result.summary()
    tail = (
        f"{s['exchanges']} exchange(s) in {s['cassettes']} cassette(s): "
        f"{s['passed']} passed, {s['failed']} failed"
    )
    if s["unreadable"]:
        tail += f", {s['unreadable']} cassette(s) unreadable"
    if s["other_exchanges"]:
        tail += f"; {s['other_exchanges']} other exchange(s) not checked"
    if s["chain_violations"]:
        tail += f"; {s['chain_violations']} chaining violation(s)"
    if s["notes"]:
        tail += f"; {s['notes']} note(s)"
    lines.append(tail)
    if against is not None:
        lines.append(
            f"against {against}: {s['now_failing']} now failing, {s['now_passing']} now passing, "
            f"{s['still_failing']} still failing, {s['still_passing']} still passing"
        )
    if result.freshness is not None:
        lines.append(f"note: {result.freshness}")
    return "\n".join(lines)


# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _chain_name(violation: ChainViolation) -> str:
    return (
        f"chain rule {violation.rule} ({violation.name}): exchange {violation.exchange} "
        f"{violation.location}"
    )


def format_junit(result: CheckResult) -> str:
    """JUnit XML: one test suite per cassette, one test case per exchange checked.

    A broken chaining rule adds a failed test case of its own.
    """
    s = result.summary()
    root = ET.Element(
        "testsuites",
        name="pytest-compaction check",
        tests=str(s["exchanges"] + s["unreadable"] + s["chain_violations"]),
        failures=str(s["failed"] + s["chain_violations"]),
        errors=str(s["unreadable"]),
    )
    for cassette in result.cassettes:
        suite = ET.SubElement(root, "testsuite", name=_xml(cassette.path))
        dotted = re.sub(r"\.(ya?ml|json)$", "", cassette.path).replace(os.sep, "/")
        classname = _xml(dotted.strip("/").replace("/", "."))
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("schema_version", cassette.version),
            ("recorded_version", cassette.recorded_version),
            ("against", result.against),
            ("strict", str(result.strict).lower()),
        ):
            if value is not None:
                ET.SubElement(properties, "property", name=name, value=_xml(value))
        failures = errors = 0
        if cassette.error is not None:
            errors = 1
            case = ET.SubElement(
                suite, "testcase", classname=classname, name="load", file=_xml(cassette.path)
            )
            first = cassette.error.splitlines()[0]
            error = ET.SubElement(case, "error", message=_xml(first), type="CassetteError")
            error.text = _xml(cassette.error)
        for ex in cassette.exchanges:
            case = ET.SubElement(
                suite, "testcase", classname=classname, name=_xml(ex.name), file=_xml(cassette.path)
            )
            if ex.passed:
                continue
            failures += 1
            lines = ex.verdict.lines()
            message = lines[0] if lines else "failed"
            if ex.against is not None:
                head = f"{ex.transition} ({ex.baseline.version} -> {ex.against.version})"
                causes = [f"cause: {c}" for c in ex.causes]
                message = f"{ex.transition}: {ex.causes[0]}" if ex.causes else message
                lines = [head, *causes, *lines]
            failure = ET.SubElement(case, "failure", message=_xml(message), type="SchemaViolation")
            failure.text = _xml("\n".join(lines))
        for violation in cassette.chain:
            failures += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=classname,
                name=_xml(_chain_name(violation)),
                file=_xml(cassette.path),
            )
            failure = ET.SubElement(
                case, "failure", message=_xml(str(violation)), type="ChainViolation"
            )
            failure.text = _xml(str(violation))
        tests = len(cassette.exchanges) + len(cassette.chain)
        tests += 1 if cassette.error is not None else 0
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
