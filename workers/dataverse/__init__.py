"""The Dataverse side: transaction and expense categories, projects and their expense estimates."""
