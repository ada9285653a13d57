"""The page's HTTP edges: checks on what an API call sends (``api_types``, ``guard``) and the
request size and queue limits (``limits``).
"""
