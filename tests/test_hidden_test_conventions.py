"""Hidden tests must declare points, category and calls; the proxy enforces calls."""
import shutil

from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student


def test_a_test_without_markers_is_a_loud_grader_error(tmp_path):
    assignment = tmp_path / "toy"
    shutil.copytree(TOY, assignment)
    (assignment / "tests" / "test_unmarked.py").write_text("def test_no_markers(student):\n    student.double(1)\n")
    write_student(tmp_path / "subs", "alice", toy_notebook())
    run_grader("grade", str(assignment), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--quiet")
    results = read_results(tmp_path / "r", "alice")
    assert results["score"] == 0 and "needs @pytest.mark.points" in results["extra_data"]["grader_error"]


def test_calling_an_undeclared_function_fails_the_test_as_a_grader_error(tmp_path):
    assignment = tmp_path / "toy"
    shutil.copytree(TOY, assignment)
    (assignment / "tests" / "test_extra.py").write_text(
        "import pytest\n\n@pytest.mark.points(1)\n@pytest.mark.category('value')\n@pytest.mark.calls('double')\n"
        "def test_sneaky(student):\n    student.relu(1)\n")
    write_student(tmp_path / "subs", "alice", toy_notebook())
    run_grader("grade", str(assignment), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--quiet")
    test = [t for t in read_results(tmp_path / "r", "alice")["tests"] if t["name"] == "test_sneaky"][0]
    assert test["status"] == "failed" and "calls marker lists only" in test["output"]
    assert "grader_error" in test["extra_data"]


def test_cli_help_describes_grading():
    result = run_grader("grade", "--help")
    assert "gh classroom clone" in result.stdout and "--jobs" in result.stdout


def test_a_missing_dataset_is_the_graders_fault_not_the_students(tmp_path):
    assignment = tmp_path / "toy"
    shutil.copytree(TOY, assignment)
    (assignment / "tests" / "test_data_needed.py").write_text(
        "import pytest\nfrom grader.course.datasets import load_mnist\n\n"
        "@pytest.mark.points(1)\n@pytest.mark.category('accuracy')\n@pytest.mark.calls('double')\n"
        "def test_needs_mnist(student, tmp_path):\n    load_mnist(tmp_path)\n")
    write_student(tmp_path / "subs", "alice", toy_notebook())
    run_grader("grade", str(assignment), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--quiet")
    results = read_results(tmp_path / "r", "alice")
    assert "not the student's fault" in results["extra_data"]["grader_error"]
    assert not results["extra_data"]["fingerprint"]  # a rerun grades it again
    assert "will be graded again" in results["output"]
