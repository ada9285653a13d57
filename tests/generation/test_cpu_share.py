"""Thread budgets: a lone generation uses every core, concurrent generations split them."""

import threading

from medalpaca_core.generation.cpu_share import CpuShare


def test_budget_splits_the_cores_between_running_generations():
    share = CpuShare(cores=4)
    assert share.threads() == 4
    with share.generation():
        assert share.threads() == 4
        with share.generation(), share.generation():
            assert share.running == 3 and share.threads() == 1
        assert share.threads() == 4
    assert share.running == 0


def test_each_generation_thread_gets_its_own_team_size():
    """torch's thread count is per calling thread: a second generation shrinks its own team and, at its
    next step, the first one's, without touching threads that run no generation."""
    import torch

    share = CpuShare(cores=2)
    seen: dict[str, int] = {}
    first_in, second_in, first_stepped, second_out = (threading.Event() for _ in range(4))

    def first() -> None:
        with share.generation():
            seen["first alone"] = torch.get_num_threads()
            first_in.set()
            second_in.wait(10)
            share(torch.zeros((1, 1)))  # a decode step while the second one runs
            seen["first beside second"] = torch.get_num_threads()
            first_stepped.set()
            second_out.wait(10)
            share(torch.zeros((1, 1)))
            seen["first alone again"] = torch.get_num_threads()

    def second() -> None:
        first_in.wait(10)
        with share.generation():
            seen["second"] = torch.get_num_threads()
            second_in.set()
            first_stepped.wait(10)
        second_out.set()

    main_threads = torch.get_num_threads()
    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(20)
    assert seen == {"first alone": 2, "second": 1, "first beside second": 1, "first alone again": 2}
    assert torch.get_num_threads() == main_threads


def test_step_hook_never_stops_generation():
    import torch

    assert not CpuShare(cores=2)(torch.zeros((3, 5), dtype=torch.long)).any()
