import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # 2 OpenMP threads on a shared 2-core machine make small ops far slower; tests use one.
    torch.set_num_threads(1)
    yield
