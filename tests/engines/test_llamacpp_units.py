"""Pure pieces of the embedded engine: stop strings, UTF-8 assembly, grammars, chat templates."""

from __future__ import annotations

import json

import pytest

from interlock.engines.llamacpp import grammar
from interlock.engines.llamacpp.sampling import TextAssembler
from interlock.engines.llamacpp.template import ChatTemplate, TemplateRenderError


def feed_all(assembler: TextAssembler, pieces: list[bytes]) -> str:
    out = "".join(assembler.feed(p) for p in pieces)
    return out + assembler.flush()


def test_utf8_split_across_tokens_is_emitted_whole() -> None:
    data = "héllo 😀".encode()
    assembler = TextAssembler(())
    emitted = [assembler.feed(data[i : i + 1]) for i in range(len(data))]
    assert "".join(emitted) == "héllo 😀"
    assert all("\ufffd" not in e for e in emitted)


def test_partial_stop_is_held_back_then_released() -> None:
    assembler = TextAssembler(("STOP",))
    assert assembler.feed(b"abc ST") == "abc "
    assert assembler.feed(b"ay") == "STay"
    assert not assembler.stopped


def test_stop_cuts_text_and_ends() -> None:
    assembler = TextAssembler(("</end>", "\n\n"))
    assert feed_all(assembler, [b"one </e", b"nd> two"]) == "one "
    assert assembler.stopped
    assert assembler.feed(b"more") == ""


def test_earliest_stop_wins() -> None:
    assembler = TextAssembler(("b", "a"))
    assert feed_all(assembler, [b"xyab"]) == "xy"


def test_held_text_is_flushed_at_the_end() -> None:
    assembler = TextAssembler(("STOP",))
    assert feed_all(assembler, [b"the ST"]) == "the ST"


def test_schema_grammar_keeps_strings_strict() -> None:
    gbnf = grammar.json_schema_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in gbnf


def test_tool_grammar_auto_allows_text() -> None:
    tools = [grammar.ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}})]
    forced = grammar.tool_call_grammar(tools, allow_text=False)
    auto = grammar.tool_call_grammar(tools, allow_text=True)
    assert "interlock-text" not in forced
    assert "root ::= interlock-call | interlock-text" in auto
    assert auto.count("root ::=") == 1


def test_unsupported_schema_is_schema_error() -> None:
    with pytest.raises(grammar.SchemaError):
        grammar.json_schema_grammar({"$ref": "https://example.invalid/schema.json"})


def test_parse_tool_call() -> None:
    parsed = grammar.parse_tool_call('{"name": "f", "arguments": {"x": 1}}')
    assert parsed is not None
    assert parsed[0] == "f"
    assert json.loads(parsed[1]) == {"x": 1}
    assert grammar.parse_tool_call('{"name": "f", "argu') is None


def test_parse_parallel_tool_calls() -> None:
    text = '{"name": "f", "arguments": {"x": 1}}\n{"name": "g", "arguments": {}}\n'
    assert grammar.parse_tool_calls(text) == [("f", '{"x": 1}'), ("g", "{}")]
    assert grammar.parse_tool_call(text) is None  # not exactly one call
    assert grammar.parse_tool_calls('{"name": "f", "arguments": {}}\n{"name": "g", "argu') is None  # cut: none
    assert grammar.parse_tool_calls('{"name": "f", "arguments": {}} [1]') is None
    assert grammar.parse_tool_calls("   ") is None


def test_parallel_grammar_repeats_the_call_rule_a_bounded_number_of_times() -> None:
    tools = [grammar.ToolSpec("f", None, {"type": "object", "properties": {}})]
    parallel = grammar.tool_call_grammar(tools, allow_text=True, parallel=True)
    assert f'("\\n" interlock-one){{0,{grammar.MAX_PARALLEL_CALLS - 1}}}' in parallel
    assert "interlock-one" not in grammar.tool_call_grammar(tools, allow_text=True)
    assert "per line" in grammar.describe_tools(tools, required=False, parallel=True)


def test_describe_tools_names_the_forced_tool() -> None:
    tools = [grammar.ToolSpec("a"), grammar.ToolSpec("b", "B does things")]
    text = grammar.describe_tools(tools, required=True, forced="b")
    assert '"name": "b"' in text
    assert 'must call the tool "b"' in text


def test_template_renders_generation_prompt_and_tools() -> None:
    source = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if tools %}[{{ tools | length }} tools]{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    out = template.render([{"role": "user", "content": "hi"}], tools=[{"type": "function"}])
    assert out == "<user>hi[1 tools]<assistant>"
    assert template.supports_tools()


def test_template_errors_are_reported() -> None:
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}", bos_token="", eos_token="")
    with pytest.raises(TemplateRenderError, match="alternate"):
        template.render([{"role": "user", "content": "x"}])


def test_template_is_sandboxed() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}", bos_token="", eos_token="")
    with pytest.raises(TemplateRenderError):
        template.render([])
