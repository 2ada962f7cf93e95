#!/usr/bin/env bash
# Checks the bizra Prometheus rules:
#   1. promtool check rules   bizra-rules.yml
#   2. promtool check config  prometheus.yml (also loads the rules it names)
#   3. promtool test rules    bizra-rules.test.yml
#   4. every alert has a test where it fires and one where it must not
#   5. mutation check: for each alert, a copy of the rules with that alert's
#      expr replaced by `vector(0) > 1` (valid, never fires) must make
#      `promtool test rules` FAIL on that alert. A surviving mutant means the
#      tests do not really test the alert.
# Needs promtool (Debian: apt-get install prometheus) and python3 (stdlib only;
# PyYAML, if installed, is used to double-check each mutant).
# Exit 0 only if everything passes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rules="$here/bizra-rules.yml"
tests="$here/bizra-rules.test.yml"
config="$here/prometheus.yml"

if ! command -v promtool >/dev/null 2>&1; then
    echo "check.sh: promtool not found (Debian/Ubuntu: apt-get install prometheus)" >&2
    exit 2
fi
command -v python3 >/dev/null 2>&1 || { echo "check.sh: python3 not found" >&2; exit 2; }

echo "== promtool check rules"
promtool check rules "$rules"
echo "== promtool check config"
promtool check config "$config"
echo "== promtool test rules"
promtool test rules "$tests"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== test coverage per alert, and mutants"
# Writes $tmp/<Alert>/bizra-rules.yml (the mutant) and a copy of the test file
# next to it (its rule_files entry is relative), prints one alert name a line.
python3 - "$rules" "$tests" "$tmp" >"$tmp/alerts" <<'PY'
import os, re, shutil, sys

rules_path, tests_path, out = sys.argv[1:4]
rules = open(rules_path).read().splitlines(keepends=True)
tests = open(tests_path).read().splitlines()
BROKEN = "vector(0) > 1"

def fail(msg):
    print("check.sh: " + msg, file=sys.stderr)
    sys.exit(1)

# The test file must load the rules by the relative name the mutants use.
if not any(re.fullmatch(r"\s*-\s*['\"]?bizra-rules\.yml['\"]?\s*", l) for l in tests):
    fail("bizra-rules.test.yml must list bizra-rules.yml in rule_files")

# Alerts in the rules file, with the line span of each rule item.
alert_re = re.compile(r"^(\s*)-\s+alert:\s*([A-Za-z0-9_]+)\s*$")
alerts = []
for i, line in enumerate(rules):
    m = alert_re.match(line)
    if m:
        alerts.append((m.group(2), i, len(m.group(1))))
if not alerts:
    fail("no alerts found in " + rules_path)
names = [a for a, _, _ in alerts]
if len(set(names)) != len(names):
    fail("duplicate alert names")

# Coverage: for each alert, at least one alert_rule_test expecting it to fire
# (non-empty exp_alerts) and one expecting it silent (exp_alerts: []).
pos, neg = set(), set()
current = None
for line in tests:
    m = re.match(r"^\s*(?:-\s+)?alertname:\s*([A-Za-z0-9_]+)\s*$", line)
    if m:
        current = m.group(1)
        continue
    m = re.match(r"^\s*(?:-\s+)?exp_alerts:\s*(.*?)\s*$", line)
    if m and current:
        (neg if m.group(1) == "[]" else pos).add(current)
        current = None
for a in names:
    if a not in pos:
        fail(f"no test expects {a} to fire")
    if a not in neg:
        fail(f"no test expects {a} to stay silent (exp_alerts: [])")

def rule_end(start, indent):
    """Index after the last line of the rule item starting at `start`."""
    j = start + 1
    while j < len(rules):
        l = rules[j]
        if l.strip() and (len(l) - len(l.lstrip())) <= indent:
            break
        j += 1
    return j

for name, start, indent in alerts:
    end = rule_end(start, indent)
    body = rules[start:end]
    k = next((n for n, l in enumerate(body) if re.match(r"^\s+expr:", l)), None)
    if k is None:
        fail(f"{name}: no expr line")
    expr_indent = len(body[k]) - len(body[k].lstrip())
    # The expr value: the expr line and any deeper-indented continuation lines.
    k_end = k + 1
    while k_end < len(body) and (not body[k_end].strip() or
                                 len(body[k_end]) - len(body[k_end].lstrip()) > expr_indent):
        k_end += 1
    new_body = body[:k] + [" " * expr_indent + "expr: " + BROKEN + "\n"] + body[k_end:]
    mutant = rules[:start] + new_body + rules[end:]
    d = os.path.join(out, name)
    os.makedirs(d)
    with open(os.path.join(d, "bizra-rules.yml"), "w") as f:
        f.writelines(mutant)
    shutil.copy(tests_path, os.path.join(d, "bizra-rules.test.yml"))
    print(name)

# Double-check with PyYAML when it is installed: each mutant differs from the
# original in exactly one rule, that alert's expr.
try:
    import yaml
except ImportError:
    yaml = None
if yaml:
    orig = yaml.safe_load(open(rules_path))
    def flat(doc):
        return [r for g in doc["groups"] for r in g["rules"]]
    for name in names:
        mut = yaml.safe_load(open(os.path.join(out, name, "bizra-rules.yml")))
        a, b = flat(orig), flat(mut)
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        if len(a) != len(b) or len(diff) != 1 or diff[0][1].get("alert") != name \
                or diff[0][1]["expr"] != BROKEN \
                or {k: v for k, v in diff[0][0].items() if k != "expr"} != \
                   {k: v for k, v in diff[0][1].items() if k != "expr"}:
            fail(f"mutant for {name} is not a one-expr change")
PY

survivors=0
count=0
while read -r alert; do
    count=$((count + 1))
    dir="$tmp/$alert"
    # The mutant must be valid rules, so a failure below is the tests' doing.
    if ! promtool check rules "$dir/bizra-rules.yml" >"$dir/check.out" 2>&1; then
        cat "$dir/check.out" >&2
        echo "FAIL: the mutant for $alert is not a valid rules file" >&2
        survivors=$((survivors + 1))
        continue
    fi
    if promtool test rules "$dir/bizra-rules.test.yml" >"$dir/test.out" 2>&1; then
        echo "FAIL: mutant survived: tests pass with $alert never firing"
        survivors=$((survivors + 1))
    elif grep -q "alertname: $alert," "$dir/test.out"; then
        echo "ok: tests catch a broken $alert"
    else
        cat "$dir/test.out" >&2
        echo "FAIL: tests failed for the $alert mutant, but not on $alert"
        survivors=$((survivors + 1))
    fi
done <"$tmp/alerts"

if [ "$count" -eq 0 ]; then
    echo "FAIL: no alerts were mutated" >&2
    exit 1
fi
if [ "$survivors" -ne 0 ]; then
    echo "FAIL: $survivors of $count mutants survived" >&2
    exit 1
fi
echo "PASS: rules valid, unit tests pass, all $count alert mutants killed"
