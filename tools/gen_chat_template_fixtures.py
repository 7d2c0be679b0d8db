#!/usr/bin/env python3
"""gen_chat_template_fixtures.py — reference renderings of Qwen's chat templates for xelm's
native renderer (runtime/chat_template.h, checked byte for byte by tests/test_chat_template.cpp).

Renders three Jinja templates with Python jinja2 exactly as Hugging Face transformers does
(ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, `raise_exception` and `tojson`):
  qwen3   the real Qwen3 template (tokenizer_config.json "chat_template", see --qwen3-config)
  qwen2.5 the public Qwen2.5-Instruct template, tests/data/chat/qwen2.5_chat_template.jinja
  chatml  the plain ChatML template xelm falls back to
over every conversation below, for add_generation_prompt true/false and enable_thinking
true/false/unset (unset = the variable is not passed, as transformers does without the kwarg).
Writes tests/data/chat/fixtures.json: the template sources, the conversations and the cases.

Messages carry only role, content and, for assistant turns, an optional non-empty
reasoning_content (xelm's ChatMessage treats an empty reasoning_content as absent). Tool
definitions (`tools=`) and assistant `tool_calls` are not exercised: xelm does not render them.

Usage: python3 tools/gen_chat_template_fixtures.py [--qwen3-config PATH]   (from the repository root)
"""
import argparse
import json
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "data" / "chat"
QWEN25_TEMPLATE = OUT_DIR / "qwen2.5_chat_template.jinja"
DEFAULT_QWEN3_CONFIG = Path("/work/shared/tokenizer/tokenizer_config.json")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def sys_(text):
    return {"role": "system", "content": text}


def user(text):
    return {"role": "user", "content": text}


def asst(text, reasoning=None):
    message = {"role": "assistant", "content": text}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return message


def tool(text):
    return {"role": "tool", "content": text}


CONVERSATIONS = {
    "single_user": [user("Hello!")],
    "system_and_user": [sys_("You are a terse assistant."), user("What is 2+2?")],
    "multi_turn": [sys_("Be brief."), user("Hi"), asst("Hello! How can I help?"), user("Tell me a joke.")],
    "history_think_stripped": [
        user("What is 3*7?"), asst("<think>\n3 times 7 is 21.\n</think>\n\n21"), user("And 4*5?")],
    "final_assistant_with_think": [
        user("What is 3*7?"), asst("<think>\n3 times 7 is 21.\n</think>\n\n21")],
    "final_assistant_without_think": [user("Say hi"), asst("Hi!")],
    "reasoning_content_in_history": [
        user("Capital of France?"), asst("Paris.", reasoning="The capital of France is Paris."),
        user("And of Italy?")],
    "reasoning_content_final": [
        user("Capital of France?"), asst("Paris.", reasoning="\nThe capital of France is Paris.\n\n")],
    "soft_switch_think": [user("Explain recursion briefly. /think")],
    "soft_switch_no_think": [sys_("You are helpful."), user("Explain recursion briefly. /no_think")],
    "soft_switch_history": [
        user("How many r's in strawberry? /no_think"), asst("<think>\n\n</think>\n\nThree."),
        user("Are you sure? /think")],
    "tool_single": [
        user("What's the weather in Paris?"),
        asst('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
        tool('{"temp_c": 18, "sky": "cloudy"}'), asst("It is 18 °C and cloudy in Paris.")],
    "tool_consecutive_grouped": [
        user("Weather in Paris and Rome?"), asst("Calling the tools."),
        tool('{"city": "Paris", "temp_c": 18}'), tool('{"city": "Rome", "temp_c": 24}'),
        tool('{"city": "Oslo", "temp_c": 7}')],
    "tool_multi_step_thinking": [
        sys_("You can call tools."), user("Plan a picnic in Paris."),
        asst("<think>\nI need the weather first.\n</think>\n\nChecking the weather."),
        tool('{"temp_c": 18}'),
        asst("<think>\nMild. Now the parks.\n</think>\n\nChecking parks."),
        tool('["Luxembourg", "Tuileries"]'),
        asst("<think>\nEnough information.\n</think>\n\nGo to the Luxembourg gardens.")],
    "tool_intermediate_without_reasoning": [
        user("Add 2 and 3."), asst("Calling add."), tool("5"), asst("The answer is 5.")],
    "user_wrapped_tool_response": [
        user("Look this up."), asst("<think>\nneed lookup\n</think>\n\nLooking it up."),
        user("<tool_response>\n42\n</tool_response>"), asst("<think>\ngot it\n</think>\n\nIt is 42.")],
    "tool_first_message": [tool("orphan result"), user("What was that?")],
    "ends_with_tool": [user("Time?"), asst("Checking the clock."), tool("12:00")],
    "system_mid_conversation": [
        user("Hi"), asst("Hello."), sys_("From now on answer in French."), user("How are you?")],
    "system_only": [sys_("You are a helpful assistant.")],
    "no_user_message": [sys_("Narrate."), asst("<think>\nstart\n</think>\n\nOnce upon a time.")],
    "unicode": [
        sys_("Réponds en français — s'il te plaît."), user("你好，世界！🌍 Ω≈ç√ e\u0301"),
        asst("<think>\n用户在打招呼 🙂\n</think>\n\nBonjour ! 👋"), user("Ça va ? 😊")],
    "empty_user_content": [user(""), asst(""), user("")],
    "empty_assistant_final": [user("Say nothing."), asst("")],
    "think_tags_in_user_text": [user("What does <think>x</think> mean in your output?"),
                                asst("It marks my reasoning."), user("<think>\nfake\n</think>\n\nand this?")],
    "multi_line_content": [
        sys_("Line one.\nLine two.\n\nLine four."), user("def f():\n    return 1\n\nExplain."),
        asst("It returns\n1.\n\nThat's all."), user("Thanks\n")],
    "assistant_whitespace_final": [
        user("Q"), asst("\n\n<think>\n\n  thinking with spaces  \n\n</think>\n\n\n  Answer with spaces.  \n\n")],
    "assistant_whitespace_history": [
        user("Q1"), asst("\n<think>\n\nr1\n\n</think>\n\n\n  A1  \n"), user("Q2")],
    "close_think_without_open": [user("Q"), asst("reasoning only\n</think>\n\nThe answer.")],
    "multiple_close_think": [user("Q"), asst("<think>\nfirst\n</think>\nmiddle\n</think>\n\nlast part")],
    "nested_open_think": [user("Q"), asst("<think>\nouter <think>\ninner\n</think>\n\nanswer")],
    "empty_think_block_history": [
        user("Q1 /no_think"), asst("<think>\n\n</think>\n\nA1"), user("Q2"), asst("<think>\nr2\n</think>\n\nA2")],
    "reasoning_content_overrides_tags": [
        user("Q"), asst("<think>\nin content\n</think>\n\nvisible", reasoning="from the field")],
    "assistant_then_user_then_assistants": [
        user("Q1"), asst("<think>\nr1\n</think>\n\nA1"), user("Q2"),
        asst("<think>\nr2\n</think>\n\nA2 part one"), asst("A2 part two")],
}


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qwen3-config", type=Path, default=DEFAULT_QWEN3_CONFIG,
                        help="Qwen3 tokenizer_config.json holding the chat_template")
    args = parser.parse_args()

    sources = {
        "qwen3": json.loads(args.qwen3_config.read_text(encoding="utf-8"))["chat_template"],
        "qwen2.5": QWEN25_TEMPLATE.read_text(encoding="utf-8"),
        "chatml": CHATML_TEMPLATE,
    }
    env = make_environment()
    compiled = {name: env.from_string(text) for name, text in sources.items()}

    cases = []
    for template_name, template in compiled.items():
        for conversation_name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (True, False):
                for enable_thinking in (True, False, None):
                    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
                    rendered = template.render(messages=messages, tools=None,
                                               add_generation_prompt=add_generation_prompt,
                                               bos_token="", eos_token="<|im_end|>", **extra)
                    cases.append({
                        "template": template_name,
                        "conversation": conversation_name,
                        "add_generation_prompt": add_generation_prompt,
                        "enable_thinking": enable_thinking,
                        "expected": rendered,
                    })

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "fixtures.json"
    out.write_text(json.dumps({"templates": sources, "conversations": CONVERSATIONS, "cases": cases},
                              ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(CONVERSATIONS)} conversations, {len(cases)} cases")


if __name__ == "__main__":
    main()
