"""Plain-line progress for a stderr that is not a terminal."""
from __future__ import annotations

from corrbench.progress import PlainProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_advance_prints_fields_and_an_eta_from_the_mean_step_time():
    lines, clock = [], Clock()
    progress = PlainProgress(lines.append, clock)
    epochs = progress.add_task("epochs", total=4, log="each")
    batches = progress.add_task("batches", total=10, log=False)
    for epoch in range(2):
        for _ in range(10):
            progress.advance(batches)
        clock.now += 30.0
        progress.update(epochs, loss=2.0 - epoch, lr=0.1)
        progress.advance(epochs)
    assert lines == ["epochs: 1/4, loss 2, lr 0.1, 30.0 s, ETA 1:30",
                     "epochs: 2/4, loss 1, lr 0.1, 60.0 s, ETA 1:00"]


def test_other_tasks_print_once_when_complete_and_after_each_reset():
    lines, clock = [], Clock()
    progress = PlainProgress(lines.append, clock)
    images = progress.add_task("images", total=None)
    for label in ("clean", "fog s1"):
        progress.reset(images, total=3, description=label)
        clock.now += 1.5
        for _ in range(3):
            progress.advance(images)
    assert lines == ["clean: 3/3, 1.5 s", "fog s1: 3/3, 1.5 s"]
