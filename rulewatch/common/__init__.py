"""The ground every layer stands on: words, numbers, periods, the calendar, logs."""
