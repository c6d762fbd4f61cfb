#!/usr/bin/python3
"""jinja2 reference for tuneloop's chat-template renderer (tests/tokenizer/chat_template_test.cpp).

Renders chat templates the way Hugging Face transformers' apply_chat_template does -- jinja2's
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
globals raise_exception / strftime_now, transformers' tojson filter, the {% generation %} tag -- and
writes every expected output (or error) to one JSON file the C++ tests compare against byte for byte.

Inputs: every *.jinja in --templates x every conversation in --corpus x add_generation_prompt in
{false, true}, plus the small feature templates of --cases. strftime_now() uses a fixed instant
(recorded as now_utc) so outputs are reproducible. Run with Debian's /usr/bin/python3 (python3-jinja2).

Usage: chat_template_reference.py --templates DIR --corpus DIR --cases FILE --out FILE
"""
import argparse
import calendar
import datetime
import glob
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime.datetime(2024, 7, 26, 13, 45, 30)
NOW_UTC = calendar.timegm(FIXED_NOW.timetuple())

# Special tokens per template file prefix (see testdata/chat_templates/SOURCE.txt).
SPECIAL_TOKENS = {
    "meta-llama": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "microsoft-Phi-3": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "mistralai": {"bos_token": "<s>", "eos_token": "</s>"},
    "Qwen": {"bos_token": "", "eos_token": "<|im_end|>"},
}


class GenerationTracker(Extension):
    """transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class RaisedException(jinja2.exceptions.TemplateError):
    """raise_exception(): transformers raises TemplateError(message)."""


def make_environment():
    def raise_exception(message):
        raise RaisedException(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, context):
    """Returns the result record: output, or the error kind, message and (syntax errors) line."""
    try:
        template = env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"ok": False, "error_kind": "syntax", "error": e.message, "line": e.lineno}
    except Exception as e:  # TemplateAssertionError (unknown filter/test) is a syntax-time error too
        return {"ok": False, "error_kind": "syntax", "error": str(e), "line": getattr(e, "lineno", None)}
    # transformers passes tools/documents (None when absent) and add_generation_prompt explicitly.
    variables = {"tools": None, "documents": None, "add_generation_prompt": False}
    variables.update(context)
    try:
        return {"ok": True, "output": template.render(**variables)}
    except RaisedException as e:
        return {"ok": False, "error_kind": "raise_exception", "error": e.message}
    except Exception as e:
        message = e.message if isinstance(e, jinja2.exceptions.TemplateError) else str(e)
        return {"ok": False, "error_kind": "runtime", "error": message, "error_type": type(e).__name__}


def special_tokens_for(template_name):
    for prefix, tokens in SPECIAL_TOKENS.items():
        if template_name.startswith(prefix):
            return tokens
    return {"bos_token": "<s>", "eos_token": "</s>"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    env = make_environment()
    result = {"jinja2_version": jinja2.__version__, "now_utc": NOW_UTC, "templates": [], "cases": []}

    conversations = []
    for path in sorted(glob.glob(os.path.join(args.corpus, "*.json"))):
        with open(path, encoding="utf-8") as f:
            conv = json.load(f)
        conv.pop("description", None)
        conversations.append((os.path.splitext(os.path.basename(path))[0], conv))

    for path in sorted(glob.glob(os.path.join(args.templates, "*.jinja"))):
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8", newline="") as f:
            source = f.read()
        for conv_name, conv in conversations:
            for agp in (False, True):
                context = dict(special_tokens_for(name))
                context.update(conv)
                context["add_generation_prompt"] = agp
                record = {"template": name, "conversation": conv_name, "add_generation_prompt": agp, "context": context}
                record.update(render(env, source, context))
                result["templates"].append(record)

    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        record = {"name": case["name"], "template": case["template"], "context": case.get("context", {})}
        record.update(render(env, case["template"], record["context"]))
        result["cases"].append(record)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    os.replace(tmp, args.out)
    ok = sum(r["ok"] for r in result["templates"])
    print(f"{len(result['templates'])} template renders ({ok} ok, {len(result['templates']) - ok} errors), "
          f"{len(result['cases'])} feature cases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
