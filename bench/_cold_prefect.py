"""Cold start of a one-step Prefect flow, as a whole process."""

from prefect import flow, task


@task
def greet() -> str:
    return "hello"


@flow
def hello() -> str:
    return greet()


if __name__ == "__main__":
    print(hello())
