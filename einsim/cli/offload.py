"""CLI command ``offload``: attention offloading for LLM decode, with tokens per dollar."""

from __future__ import annotations

import math
from typing import Optional

import typer
from rich.table import Table

from einsim.cli import UsageFailure, app, console, emit
from einsim.workloads import parse_seq_len
from hw_models.offload import load_link, load_llm, parse_group
from einsim.kernels.lamina import Deployment, best_batch, iteration

_KEYS = ("tokens_per_s", "cost_per_hour", "tokens_per_dollar", "max_batch", "iteration_s",
         "link_bandwidth_needed_bytes_per_s")


def _run(deployment: Deployment, context: int, batch: str):
    if batch == "auto":
        return best_batch(deployment, context)
    try:
        size = float(batch) if any(c in batch for c in ".eE") else int(batch)
    except ValueError:
        raise UsageFailure(f"--batch {batch!r}: expected a positive integer or auto") from None
    if isinstance(size, float) and not (math.isfinite(size) and size.is_integer()):
        raise UsageFailure(f"--batch {batch!r}: expected a positive integer or auto, not a "
                           "fraction")
    return iteration(deployment, int(size), context)


# Options shared with ``einsim report offload``.
OFFLOAD_MODEL = typer.Option("llama3-70b", "--model",
                             help="llama-33b, llama-65b, llama3-70b, llama3-8b or a YAML file.")
OFFLOAD_CONTEXT = typer.Option("32K", "--context", help="Tokens per request.")
OFFLOAD_COMPUTE = typer.Option("h100:2", "--compute", help="DEVICE:COUNT")
OFFLOAD_MEMORY = typer.Option("h20:4", "--memory", help="DEVICE:COUNT holding the KV cache.")
OFFLOAD_BASELINE = typer.Option("h100:4", "--baseline", help="Homogeneous deployment to compare.")
OFFLOAD_BATCH = typer.Option("auto", "--batch", help="Batch size or auto.")
OFFLOAD_LINK = typer.Option("roce-400g", "--link", help="Link preset.")
OFFLOAD_NO_PIPELINING = typer.Option(False, "--no-pipelining",
                                     help="Do not stagger two micro-batches.")
OFFLOAD_MAPPING = typer.Option(None, "--mapping",
                               help="Loop tree of the layer (a mapping of decode-layer; default "
                                    "attention-offload, or decode-tensor-parallel without "
                                    "--memory).")


@app.command()
def offload(model: str = OFFLOAD_MODEL,
            context: str = OFFLOAD_CONTEXT,
            compute: str = OFFLOAD_COMPUTE,
            memory: Optional[str] = OFFLOAD_MEMORY,
            baseline: Optional[str] = OFFLOAD_BASELINE,
            batch: str = OFFLOAD_BATCH,
            link: str = OFFLOAD_LINK,
            no_pipelining: bool = OFFLOAD_NO_PIPELINING,
            mapping: Optional[str] = OFFLOAD_MAPPING,
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Decode throughput and cost of attention offloading against a homogeneous deployment."""
    llm = load_llm(model)
    tokens = parse_seq_len(context)
    offloaded = Deployment(llm, parse_group(compute, "compute"),
                           parse_group(memory, "memory") if memory else None,
                           load_link(link) if memory else None, not no_pipelining, mapping)
    result = _run(offloaded, tokens, batch).summary()
    output = {k: result[k] for k in _KEYS}
    output.update(batch=result["batch"], time_split_s=result["time_split_s"],
                  deployment=offloaded.name)
    if baseline:
        reference = Deployment(llm, parse_group(baseline, "baseline"))
        other = _run(reference, tokens, "auto").summary()
        output["baseline"] = {k: other[k] for k in _KEYS} | {"batch": other["batch"]}
        output["tokens_per_dollar_ratio"] = (output["tokens_per_dollar"]
                                             / other["tokens_per_dollar"])
    if as_json:
        emit(output)
        return
    table = Table(title=f"{llm.name} decode at {tokens:,} tokens of context")
    table.add_column("")
    table.add_column(f"{offloaded.name} ({compute}" + (f" + {memory})" if memory else ")"),
                     justify="right")
    if baseline:
        table.add_column(f"homogeneous ({baseline})", justify="right")
    rows = [("batch", "batch", "{:,}"), ("max batch", "max_batch", "{:,}"),
            ("iteration", "iteration_s", "{:.4g} s"), ("tokens/s", "tokens_per_s", "{:,.0f}"),
            ("cost per hour", "cost_per_hour", "${:.2f}"),
            ("tokens per dollar", "tokens_per_dollar", "{:,.0f}"),
            ("link bandwidth needed", "link_bandwidth_needed_bytes_per_s", "{:.3g} B/s")]
    for label, key, fmt in rows:
        cells = [fmt.format(output[key])]
        if baseline:
            cells.append(fmt.format(output["baseline"][key]))
        table.add_row(label, *cells)
    console.print(table)
    if baseline:
        console.print(f"tokens per dollar: [bold]{output['tokens_per_dollar_ratio']:.2f}x[/bold] "
                      "the homogeneous deployment")
