"""The built-in chat templates (``chat_template = "chatml"`` ...): their Jinja sources, special
tokens and end-of-turn stops. Without tools each renders as its family's plain template; with
tools (chatml, llama-3, mistral) as the family's documented tool layout, in the format its
tool parser reads back (``shim.adapters._tool_formats``).
"""

from __future__ import annotations

import msgspec


class Builtin(msgspec.Struct, frozen=True):
    source: str
    bos_token: str
    eos_token: str
    # End-of-turn markers the model may emit as text; always applied as stops.
    stop: tuple[str, ...]


# ChatML. With tools, as Hermes 2 Pro/3 and Qwen2.5 lay them out (their model cards): the
# signatures inside <tools></tools> in the system turn, calls as <tool_call> blocks in the
# assistant turn, results as a user turn of <tool_response> blocks. Without tools, plain ChatML.
_CHATML = (
    "{% if tools %}{{ '<|im_start|>system\n' }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\n\n' }}{% endif %}"
    "{{ '# Tools\n\nYou may call one or more functions to help with the request. Their "
    "signatures are listed within <tools></tools> XML tags:\n<tools>' }}"
    "{% for tool in tools %}{{ '\n' + tool | tojson }}{% endfor %}"
    "{{ '\n</tools>\n\nTo call a function, answer with a JSON object holding its name and "
    'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": '
    '<function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n\' }}'
    "{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message['role'] == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}"
    "{{ '<|im_start|>user' }}{% endif %}"
    "{{ '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}"
    "{{ '<|im_end|>\n' }}{% endif %}"
    "{% elif message['tool_calls'] is defined and message['tool_calls'] %}"
    "{{ '<|im_start|>' + message['role'] }}"
    "{% if message['content'] %}{{ '\n' + message['content'] }}{% endif %}"
    "{% for call in message['tool_calls'] %}{% set args = call['function']['arguments'] %}"
    "{{ '\n<tool_call>\n{\"name\": \"' + call['function']['name'] + '\", \"arguments\": ' }}"
    "{% if args is string %}{{ args }}{% else %}{{ args | tojson }}{% endif %}"
    "{{ '}\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
# Llama 3. With tools, as Llama 3.1's template lays them out (its model card): "Environment:
# ipython" in the system turn, the signatures and the call format in the first user turn, calls
# as {"name", "parameters"} (several joined by "; "), results in `ipython` turns.
_LLAMA3_TOOLS = (
    "Answer with a JSON for a function call, choosing one of the functions below and its "
    "proper arguments.\n\nRespond in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}. '
    "Do not use variables.\n\n"
)
_LLAMA3 = (
    "{{ bos_token }}{% set ns = namespace(tools_shown=false) %}"
    "{% if tools and not (messages and messages[0]['role'] == 'system') %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython<|eot_id|>' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% elif tools and message['role'] == 'user' and not ns.tools_shown %}"
    "{% set ns.tools_shown = true %}"
    "{{ '<|start_header_id|>user<|end_header_id|>\n\n" + _LLAMA3_TOOLS.replace("\n", "\\n") + "' }}"
    "{% for tool in tools %}{{ tool | tojson(indent=4) + '\n\n' }}{% endfor %}"
    "{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% elif message['tool_calls'] is defined and message['tool_calls'] %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% for call in message['tool_calls'] %}{% set args = call['function']['arguments'] %}"
    "{% if not loop.first %}{{ '; ' }}{% endif %}"
    "{{ '{\"name\": \"' + call['function']['name'] + '\", \"parameters\": ' }}"
    "{% if args is string %}{{ args }}{% else %}{{ args | tojson }}{% endif %}{{ '}' }}"
    "{% endfor %}{{ '<|eot_id|>' }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|start_header_id|>ipython<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% else %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# Mistral v0.2+/Mixtral; a system message is folded into the first user turn. With tools, as
# Mistral v0.3 lays them out (mistral-common's v3 tokenizer): [AVAILABLE_TOOLS] before the
# last user turn, calls as [TOOL_CALLS] and a JSON list, results as [TOOL_RESULTS]. Roles
# alternate among user turns and assistant answers; tool calls and results sit between them.
_MISTRAL = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% set ns = namespace(turn=0, last_user=-1) %}"
    "{% for message in loop_messages %}{% if message['role'] == 'user' %}"
    "{% set ns.last_user = loop.index0 %}{% endif %}{% endfor %}"
    "{{ bos_token }}{% for message in loop_messages %}"
    "{% set calls = message['tool_calls'] is defined and message['tool_calls'] %}"
    "{% if message['role'] != 'tool' and not calls %}"
    "{% if (message['role'] == 'user') != (ns.turn % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set ns.turn = ns.turn + 1 %}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{% if tools and loop.index0 == ns.last_user %}"
    "{{ '[AVAILABLE_TOOLS] ' + tools | tojson + '[/AVAILABLE_TOOLS]' }}{% endif %}"
    "{% if loop.first %}{{ '[INST] ' + system + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif calls %}{{ '[TOOL_CALLS] [' }}{% for call in message['tool_calls'] %}"
    "{% set args = call['function']['arguments'] %}{% if not loop.first %}{{ ', ' }}{% endif %}"
    "{{ '{\"name\": ' + call['function']['name'] | tojson + ', \"arguments\": ' }}"
    "{% if args is string %}{{ args }}{% else %}{{ args | tojson }}{% endif %}"
    "{% if call['id'] %}{{ ', \"id\": ' + call['id'] | tojson }}{% endif %}{{ '}' }}"
    "{% endfor %}{{ ']' + eos_token }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '[TOOL_RESULTS] ' + {'content': message['content'], 'call_id': message['tool_call_id']}"
    " | tojson + '[/TOOL_RESULTS]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
_ZEPHYR = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n"
    "{% endif %}\n{% endfor %}"
)
# Gemma 1/2 have no system role: it is merged into the first user turn (as Gemma 3 does).
_GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}"
    "{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
    " + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
_PHI3 = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

BUILTINS: dict[str, Builtin] = {
    "chatml": Builtin(_CHATML, "", "<|im_end|>", ("<|im_end|>",)),
    "llama-2": Builtin(_LLAMA2, "<s>", "</s>", ("</s>",)),
    "llama-3": Builtin(_LLAMA3, "<|begin_of_text|>", "<|eot_id|>", ("<|eot_id|>",)),
    "mistral": Builtin(_MISTRAL, "<s>", "</s>", ("</s>",)),
    "zephyr": Builtin(_ZEPHYR, "", "</s>", ("</s>",)),
    "gemma": Builtin(_GEMMA, "<bos>", "<eos>", ("<end_of_turn>",)),
    "phi-3": Builtin(_PHI3, "<s>", "<|endoftext|>", ("<|end|>", "<|endoftext|>")),
}
