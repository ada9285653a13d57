"""The command line's generation settings (``medalpaca_core.cli``), without loading a model."""

from medalpaca_core import cli


def test_the_repetition_guard_is_off_unless_asked_for():
    parser = cli.build_parser()
    assert cli.settings_from_args(parser.parse_args(["ask", "--variant", "smol-base", "q"])).repetition_penalty == 1.0
    guarded = parser.parse_args(["ask", "--variant", "smol-base", "--repetition-penalty", "1.3", "q"])
    assert cli.settings_from_args(guarded).repetition_penalty == 1.3
    assert cli.settings_from_args(guarded).generate_kwargs()["repetition_penalty"] == 1.3


def test_an_out_of_range_repetition_penalty_is_a_clear_error(capsys):
    assert cli.main(["ask", "--variant", "smol-base", "--repetition-penalty", "3", "q"]) == 2
    assert "repetition_penalty must be between 0.5 and 2" in capsys.readouterr().err
