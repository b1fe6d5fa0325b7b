"""Serving engines: read a vLLM, SGLang, TensorRT-LLM or llama.cpp launch command, predict what that engine
reports at start-up, and print the launch command of a layout.

flags.py reads and writes argv with each engine's flag table; command.py says which engine a command starts
and holds the parsed settings; vllm.py, sglang.py, trtllm.py and llamacpp.py each hold one engine's flags,
memory semantics (with their sources) and launch command; startup.py the start-up report and the pieces they
share; report.py the `check -- <command>` evaluation through the estimate facade; render.py and cli.py the
command-line side. Imported only when an engine is asked for (estimate stays light). See docs/engines.md.
"""
