"""Cold start of a one-step DBOS workflow, as a whole process."""

from dbos import DBOS

DBOS(config={"name": "cold", "system_database_url": "sqlite:///cold_dbos.sqlite"})


@DBOS.step()
def greet() -> str:
    return "hello"


@DBOS.workflow()
def hello() -> str:
    return greet()


if __name__ == "__main__":
    DBOS.launch()
    print(hello())
    DBOS.destroy()
