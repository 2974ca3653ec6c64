//! What `meta-train` does around the library's run: checkpoint directories (written atomically
//! through [`Saver`]), metrics.jsonl, log lines, progress bars and Ctrl-C.

use indicatif::ProgressBar;
use maml::{Checkpoint, Event, Progress, Saved, TrainingHost};
use model::BertClassifier;
use serde_json::json;
use tasks::SamplerState;

use crate::checkpoints::{OPTIMIZER_STATE, Saver};
use crate::metrics_log::MetricsLog;
use crate::record::Recorder;
use crate::{common, interrupt, progress};

/// The binary's side of a meta-training run.
pub struct Host<'a> {
    /// Where checkpoints go and what they are made of.
    pub saver: Saver<'a>,
    /// metrics.jsonl, opened once the run directory is.
    pub metrics: Option<MetricsLog>,
    /// The run's outer steps.
    pub total_steps: usize,
    /// The outer-step bar (the whole run).
    pub bar: ProgressBar,
    /// The bar of the evaluation in progress.
    pub evaluation_bar: Option<ProgressBar>,
    /// With --record.
    pub recorder: Option<Recorder>,
}

impl Host<'_> {
    fn log(&self, record: serde_json::Value) -> anyhow::Result<()> {
        self.metrics
            .as_ref()
            .expect("metrics.jsonl is open before the run starts")
            .append(&record)
    }
}

impl TrainingHost<BertClassifier, SamplerState> for Host<'_> {
    type Error = anyhow::Error;

    fn save(
        &mut self,
        checkpoint: Checkpoint<'_, BertClassifier, SamplerState>,
    ) -> anyhow::Result<()> {
        let mut meta = self.saver.meta(checkpoint.step, checkpoint.epoch);
        if let Some((validation, test)) = checkpoint.scores {
            meta.metrics
                .insert("validation_accuracy".to_string(), validation);
            meta.metrics.insert("test_accuracy".to_string(), test);
        }
        self.saver.save(
            &checkpoint.name,
            checkpoint.model,
            checkpoint.optimizer,
            &meta,
            checkpoint.state,
            checkpoint.best,
        )
    }

    fn latest(&mut self) -> anyhow::Result<Option<Saved<SamplerState>>> {
        Ok(self.saver.latest()?.map(|resumed| Saved {
            optimizer_state: resumed.dir.join(OPTIMIZER_STATE),
            dir: resumed.dir,
            state: resumed.state,
        }))
    }

    fn checkpoint_name(&self, epoch: usize, step: usize) -> String {
        self.saver
            .checkpoints
            .name(&format!("epoch-{epoch}.step-{step}"))
    }

    fn progress(&mut self, progress: Progress<'_>) -> anyhow::Result<()> {
        match progress {
            Progress::TasksDrawn { step, tasks } => {
                if let Some(recorder) = &mut self.recorder {
                    recorder.tasks_drawn(step, None, &tasks);
                }
            }
            Progress::Event(Event::TaskAdapted {
                task,
                tasks,
                domain,
                inner_losses,
                support_batches,
                query_loss,
                ..
            }) => {
                self.bar.set_message(format!(
                    "task {}/{tasks} ({domain}) query loss {query_loss:.4}",
                    task + 1
                ));
                if let Some(recorder) = &self.recorder {
                    recorder.task(
                        task,
                        &domain,
                        &support_batches,
                        json!({"inner_losses": inner_losses, "query_loss": query_loss}),
                    )?;
                }
            }
            Progress::Event(Event::TaskEvaluated {
                task,
                domain,
                metrics,
                support_batches,
                ..
            }) => {
                if let Some(bar) = &self.evaluation_bar {
                    bar.inc(1);
                }
                if let Some(recorder) = &self.recorder {
                    recorder.task(
                        task,
                        &domain,
                        &support_batches,
                        json!({"accuracy": metrics.accuracy, "mean_loss": metrics.mean_loss}),
                    )?;
                }
            }
            Progress::Event(_) => {}
            Progress::EvaluationStarted { what, step, tasks } => {
                if let Some(bar) = self.evaluation_bar.take() {
                    bar.finish_and_clear();
                }
                self.evaluation_bar = Some(progress::bar(tasks.len() as u64, what));
                if let Some(recorder) = &mut self.recorder {
                    recorder.tasks_drawn(step, Some(what), &tasks);
                }
            }
            Progress::Step {
                report,
                epoch,
                domains,
                seconds,
            } => {
                self.bar.inc(1);
                tracing::info!(
                    "step {}/{}: query loss {:.4}, query accuracy {:.4}, meta-gradient norm {:.4}",
                    report.step,
                    self.total_steps,
                    report.mean_query_loss,
                    report.mean_query_accuracy,
                    report.grad_norm
                );
                let line = json!({
                    "kind": "outer_step",
                    "step": report.step,
                    "epoch": epoch,
                    "tasks": domains.len(),
                    "domains": domains,
                    "mean_query_loss": report.mean_query_loss,
                    "mean_query_accuracy": report.mean_query_accuracy,
                    "grad_norm": report.grad_norm,
                    "seconds": seconds,
                });
                self.log(common::with_loss_scaling(line, report.loss_scaling))?;
                if let Some(recorder) = &self.recorder {
                    recorder.line(&json!({
                        "kind": "outer_step",
                        "step": report.step,
                        "mean_query_loss": report.mean_query_loss,
                        "grad_norm": report.grad_norm,
                    }))?;
                }
            }
            Progress::Evaluated(evaluation) => {
                if let Some(bar) = self.evaluation_bar.take() {
                    bar.finish_and_clear();
                }
                tracing::info!(
                    "evaluation at step {}: validation accuracy {:.4}, test accuracy {:.4} (mean over tasks)",
                    evaluation.step,
                    evaluation.validation.mean_accuracy,
                    evaluation.test.mean_accuracy
                );
                self.log(json!({
                    "kind": "evaluation",
                    "step": evaluation.step,
                    "epoch": evaluation.epoch,
                    "checkpoint": evaluation.checkpoint,
                    "validation": evaluation.validation,
                    "test": evaluation.test,
                }))?;
            }
        }
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        interrupt::requested()
    }
}
