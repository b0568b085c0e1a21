"""Who is asking, and what they may do: credentials, principals and the access policy."""
