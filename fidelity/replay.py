#!/usr/bin/env python3
"""Replay one seed of the quick cell in PyTorch + transformers from what meta-bert recorded.

    python fidelity/replay.py RUNS_DIR [--seed 1]

RUNS_DIR is the directory `cargo xtask reproduce --record` filled (e.g. runs/fidelity/quick):
for the seed, one meta-training run, BERT and Meta-BERT fine-tuned, BERT and Meta-BERT zero-shot,
each run directory holding `record/record.jsonl` and `record/initial/` (the weights and head
it started from; see FIDELITY.md for the format). Dropout was off in those runs and is off here.

The script redoes every step with transformers' BertForSequenceClassification and torch's Adam /
AdamW, consuming exactly the recorded reviews in the recorded batches, and compares:
  - the loss of every inner, query (outer) and fine-tuning step: relative error <= 1e-3;
  - the scores of every validation and test task at every evaluation, and so the checkpoint
    chosen on validation;
  - the final weights (meta-training's chosen and latest checkpoints, each fine-tuning's last);
  - every test prediction of the four scored models: identical labels, except where both sides'
    probabilities are within 1e-4 of a tie.
The fine-tuning of Meta-BERT and its zero-shot scores start from the checkpoint this replay
chose and trained itself, not from meta-bert's file, so the whole pipeline is replayed.

Exit status 0 when everything agrees, 1 otherwise; a JSON summary is printed last.
"""
import argparse
import copy
import glob
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertForSequenceClassification

LOSS_RTOL = 1e-3
TIE = 1e-4


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def one_run(runs_dir, pattern):
    matches = sorted(glob.glob(os.path.join(runs_dir, pattern)))
    if len(matches) != 1:
        sys.exit(f"expected one run matching {pattern} in {runs_dir}, found {matches}")
    return matches[0]


class Reviews:
    """The review file, tokenised as meta-bert does: [CLS] text [SEP], cut to max_seq_len."""

    def __init__(self, data_path, model_dir, labels, max_seq_len):
        with open(data_path) as f:
            self.rows = json.load(f)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.label_ids = {name: i for i, name in enumerate(labels)}
        self.max_seq_len = max_seq_len
        self.cache = {}

    def label(self, index):
        return self.label_ids[self.rows[index]["label"]]

    def ids(self, index):
        if index not in self.cache:
            self.cache[index] = self.tokenizer(
                self.rows[index]["text"], truncation=True, max_length=self.max_seq_len
            )["input_ids"]
        return self.cache[index]

    def batch(self, indices):
        """Padded to the longest, with its attention mask, and the labels."""
        ids = [self.ids(i) for i in indices]
        longest = max(len(x) for x in ids)
        input_ids = torch.zeros(len(ids), longest, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        labels = torch.tensor([self.label(i) for i in indices])
        return input_ids, mask, labels


class Report:
    def __init__(self):
        self.checks = {}
        self.failures = []

    def loss(self, what, ours, theirs):
        err = abs(ours - theirs) / max(abs(theirs), 1e-12)
        entry = self.checks.setdefault("losses", {"compared": 0, "max_rel_err": 0.0})
        entry["compared"] += 1
        entry["max_rel_err"] = max(entry["max_rel_err"], err)
        if not err <= LOSS_RTOL:
            self.failures.append(f"{what}: torch {ours:.7g}, meta-bert {theirs:.7g} (rel {err:.2e})")

    def equal(self, what, ours, theirs):
        if ours != theirs:
            self.failures.append(f"{what}: torch {ours}, meta-bert {theirs}")

    def correct(self, what, scores, recorded_accuracy):
        """Correct counts equal, up to the reviews that are near-ties on our side."""
        theirs = round(recorded_accuracy * scores.total)
        if abs(scores.correct - theirs) > scores.near_ties:
            self.failures.append(
                f"{what}: torch {scores.correct}/{scores.total} right, meta-bert {theirs}")


def load_model(directory):
    model = BertForSequenceClassification.from_pretrained(
        directory, attn_implementation="eager", dtype=torch.float32
    )
    # Dropout off, as in the recorded runs; gradients still flow.
    model.eval()
    return model


def loss_of(model, reviews, indices):
    input_ids, mask, labels = reviews.batch(indices)
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return torch.nn.functional.cross_entropy(logits, labels), logits, labels


def adapt(meta, reviews, batches, lr):
    """A copy of `meta` after a fresh Adam over the support batches; the loss of each batch
    before its update."""
    model = copy.deepcopy(meta)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)
    losses = []
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = loss_of(model, reviews, batch)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return model, losses


class Scores:
    def __init__(self, correct, total, mean_loss, probabilities):
        self.correct, self.total, self.mean_loss = correct, total, mean_loss
        self.probabilities = probabilities
        # Reviews whose two most probable labels are within TIE: either side may break the tie.
        self.near_ties = sum(1 for p in probabilities if is_tie(p))


def is_tie(probabilities):
    top = sorted(probabilities)
    return top[-1] - top[-2] <= TIE


@torch.no_grad()
def score(model, reviews, indices):
    """Correct count, mean loss and per-review probabilities, in `indices` order."""
    probabilities, loss_sum, correct = [], 0.0, 0
    for start in range(0, len(indices), 32):
        chunk = indices[start : start + 32]
        input_ids, mask, labels = reviews.batch(chunk)
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        probabilities.extend(torch.softmax(logits, 1).tolist())
    return Scores(correct, len(indices), loss_sum / len(indices), probabilities)


def compare_weights(report, what, model, checkpoint_dir, start):
    """Max absolute difference, and the difference of the two runs' updates relative to the
    update itself (||Δ_torch − Δ_meta-bert|| / ||Δ_torch||, over all parameters)."""
    theirs = load_file(os.path.join(checkpoint_dir, "model.safetensors"))
    ours = model.state_dict()
    max_abs, diff_sq, update_sq = 0.0, 0.0, 0.0
    missing = [name for name in ours if name not in theirs and "position_ids" not in name]
    report.equal(f"{what}: parameters missing from meta-bert's checkpoint", missing, [])
    for name, tensor in ours.items():
        if name not in theirs:
            continue
        other = theirs[name].to(torch.float32)
        max_abs = max(max_abs, (tensor - other).abs().max().item())
        diff_sq += ((tensor - other) ** 2).sum().item()
        update_sq += ((tensor - start[name]) ** 2).sum().item()
    relative = math.sqrt(diff_sq) / max(math.sqrt(update_sq), 1e-30)
    report.checks.setdefault("weights", {})[what] = {
        "max_abs_diff": max_abs,
        "update_rel_diff": relative,
        "update_norm": math.sqrt(update_sq),
    }
    if not relative <= 1e-2:
        report.failures.append(
            f"{what}: weights differ by {relative:.2e} of the update (max abs {max_abs:.2e})"
        )


def compare_predictions(report, what, reviews, probabilities, results):
    recorded = results["test_predictions"]
    report.equal(f"{what}: test labels (label map)",
                 [reviews.label(i) for i in recorded["review_index"]], recorded["label"])
    disagreements, near_ties = 0, 0
    for row, (ours, theirs) in enumerate(zip(probabilities, recorded["probabilities"])):
        ours_label = max(range(len(ours)), key=lambda k: ours[k])
        if ours_label == recorded["predicted"][row]:
            continue
        if is_tie(ours) and is_tie(theirs):
            near_ties += 1
        else:
            disagreements += 1
    report.checks.setdefault("predictions", {})[what] = {
        "reviews": len(probabilities),
        "differing": disagreements,
        "differing_near_ties": near_ties,
        "max_prob_diff": max(
            abs(a - b)
            for ours, theirs in zip(probabilities, recorded["probabilities"])
            for a, b in zip(ours, theirs)
        ),
    }
    if disagreements:
        report.failures.append(f"{what}: {disagreements} test predictions differ")


def best_by_validation(evaluations):
    """meta-bert's rule: highest accuracy, ties to the lower loss, then the earlier."""
    best = None
    for step, accuracy, loss in evaluations:
        if best is None or accuracy > best[1] or (accuracy == best[1] and loss < best[2]):
            best = (step, accuracy, loss)
    return best[0]


def replay_meta_training(report, run_dir, reviews, record):
    config = record[0]
    meta = load_model(os.path.join(run_dir, "record", "initial"))
    start = {k: v.clone() for k, v in meta.state_dict().items()}
    outer = torch.optim.Adam(meta.parameters(), lr=config["outer_lr"], eps=1e-8)
    results = json.load(open(os.path.join(run_dir, "results.json")))
    # Lines come in the order tasks finished (meta-bert adapts tasks side by side); meta-bert
    # sums their gradients in task order, and so does the replay.
    by_order = lambda line: (line["step"], line.get("split", ""), line["task"])
    tasks = sorted((line for line in record if line["kind"] == "task"), key=by_order)
    evaluation_tasks = sorted(
        (line for line in record if line["kind"] == "evaluation_task"), key=by_order)
    snapshots, validation = {}, []
    for step in sorted({task["step"] for task in tasks}):
        grads = None
        step_tasks = [task for task in tasks if task["step"] == step]
        for task in step_tasks:
            adapted, losses = adapt(meta, reviews, task["inner_batches"], config["inner_lr"])
            for k, (ours, theirs) in enumerate(zip(losses, task["inner_losses"])):
                report.loss(f"step {step} task {task['task']} inner batch {k + 1}", ours, theirs)
            report.equal(f"step {step} task {task['task']} inner batches",
                         len(losses), len(task["inner_losses"]))
            adapted.zero_grad(set_to_none=True)
            query_loss, _, _ = loss_of(adapted, reviews, task["query"])
            report.loss(f"step {step} task {task['task']} query", query_loss.item(),
                        task["query_loss"])
            query_loss.backward()
            task_grads = [p.grad.detach().clone() if p.grad is not None else None
                          for p in adapted.parameters()]
            grads = task_grads if grads is None else [
                a if b is None else (b if a is None else a + b) for a, b in zip(grads, task_grads)
            ]
        outer.zero_grad(set_to_none=True)
        for parameter, grad in zip(meta.parameters(), grads):
            parameter.grad = None if grad is None else grad / len(step_tasks)
        outer.step()
        at_step = [task for task in evaluation_tasks if task["step"] == step]
        if at_step:
            snapshots[step] = {k: v.clone() for k, v in meta.state_dict().items()}
            pooled = {}
            for task in at_step:
                adapted, _ = adapt(meta, reviews, task["inner_batches"], config["inner_lr"])
                scores = score(adapted, reviews, task["query"])
                what = f"evaluation at step {step}, {task['split']} task {task['task']}"
                report.correct(what, scores, task["accuracy"])
                report.loss(f"{what}: mean loss", scores.mean_loss, task["mean_loss"])
                counts = pooled.setdefault(task["split"], [0, 0, 0.0])
                counts[0] += scores.correct
                counts[1] += scores.total
                counts[2] += scores.mean_loss * scores.total
            correct, total, loss_sum = pooled["validation"]
            validation.append((step, correct / total, loss_sum / total))
    best_step = best_by_validation(validation)
    recorded_best = results["best"]["step"]
    report.equal("meta-training: checkpoint chosen on validation (step)", best_step, recorded_best)
    report.checks["meta_training"] = {
        "outer_steps": len({task["step"] for task in tasks}),
        "tasks": len(tasks),
        "evaluation_tasks": len(evaluation_tasks),
        "chosen_step": best_step,
    }
    compare_weights(report, "meta-training, latest checkpoint", meta,
                    results["latest_checkpoint"], start)
    chosen = copy.deepcopy(meta)
    chosen.load_state_dict(snapshots[best_step])
    compare_weights(report, "meta-training, chosen checkpoint", chosen,
                    results["best_checkpoint"], start)
    return chosen


def replay_finetuning(report, what, run_dir, reviews, record, model):
    config = record[0]
    start = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"],
                                  weight_decay=config["weight_decay"], eps=1e-8)
    results = json.load(open(os.path.join(run_dir, "results.json")))
    test = results["test_predictions"]["review_index"]
    batches = [line for line in record if line["kind"] == "batch"]
    for epoch in sorted({batch["epoch"] for batch in batches}):
        for batch in (b for b in batches if b["epoch"] == epoch):
            optimizer.zero_grad(set_to_none=True)
            loss, _, _ = loss_of(model, reviews, batch["rows"])
            report.loss(f"{what}: epoch {epoch} batch {batch['batch']}", loss.item(), batch["loss"])
            loss.backward()
            optimizer.step()
        scores = score(model, reviews, test)
        recorded = next(e for e in results["epochs"] if e["epoch"] == epoch)["test"]
        report.correct(f"{what}: test after epoch {epoch}", scores, recorded["accuracy"])
        report.loss(f"{what}: test mean loss after epoch {epoch}", scores.mean_loss,
                    recorded["mean_loss"])
    report.checks.setdefault("finetuning", {})[what] = {"batches": len(batches)}
    last_epoch = max(e["epoch"] for e in results["epochs"])
    checkpoint = os.path.join(run_dir, "ckpt", f"transfer.epoch-{last_epoch}")
    compare_weights(report, f"{what}, last epoch", model, checkpoint, start)
    compare_predictions(report, what, reviews, scores.probabilities, results)


def replay_zero_shot(report, what, run_dir, reviews, model):
    results = json.load(open(os.path.join(run_dir, "results.json")))
    test = results["test_predictions"]["review_index"]
    scores = score(model, reviews, test)
    recorded = results["zero_shot"]["test"]
    report.correct(f"{what}: test", scores, recorded["accuracy"])
    report.loss(f"{what}: test mean loss", scores.mean_loss, recorded["mean_loss"])
    compare_predictions(report, what, reviews, scores.probabilities, results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("runs_dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    s = f"s{args.seed}"
    meta_dir = one_run(args.runs_dir, f"meta-d*-t*-{s}")
    bert_dir = one_run(args.runs_dir, f"finetune-d*-bert-{s}")
    meta_ft_dir = one_run(args.runs_dir, f"finetune-d*-meta-d*-{s}")
    bert_zero_dir = one_run(args.runs_dir, f"zeroshot-bert-{s}")
    meta_zero_dir = one_run(args.runs_dir, f"zeroshot-meta-d*-{s}")
    record = {d: read_jsonl(os.path.join(d, "record", "record.jsonl"))
              for d in (meta_dir, bert_dir, meta_ft_dir, bert_zero_dir, meta_zero_dir)}
    config = record[meta_dir][0]
    reviews = Reviews(config["data"], os.path.join(meta_dir, "record", "initial"),
                      config["labels"], config["max_seq_len"])
    report = Report()
    for d, lines in record.items():
        report.equal(f"{os.path.basename(d)}: dropout", lines[0]["dropout"], False)
        report.equal(f"{os.path.basename(d)}: label map", lines[0]["labels"], config["labels"])

    chosen = replay_meta_training(report, meta_dir, reviews, record[meta_dir])
    replay_zero_shot(report, "BERT zero-shot", bert_zero_dir, reviews,
                     load_model(os.path.join(bert_zero_dir, "record", "initial")))
    replay_zero_shot(report, "Meta-BERT zero-shot", meta_zero_dir, reviews, copy.deepcopy(chosen))
    replay_finetuning(report, "BERT fine-tuned", bert_dir, reviews, record[bert_dir],
                      load_model(os.path.join(bert_dir, "record", "initial")))
    replay_finetuning(report, "Meta-BERT fine-tuned", meta_ft_dir, reviews, record[meta_ft_dir],
                      copy.deepcopy(chosen))

    summary = {
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "checks": report.checks,
        "failures": report.failures[:50],
        "failure_count": len(report.failures),
        "agree": not report.failures,
    }
    print(json.dumps(summary, indent=1))
    sys.exit(0 if not report.failures else 1)


if __name__ == "__main__":
    main()
