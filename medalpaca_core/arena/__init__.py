"""Votes and what they rank: ballots the server issues (``ballots``), the votes database and vote
files, Bradley-Terry ratings, the leaderboard (table and CLI), a finished comparison as a record
(``export``) and what an adapter changed against its base (``divergence``).

A caller of the studio: it never loads a model.
"""
