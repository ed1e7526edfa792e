"""The Dataverse side: categories, projects and estimates, expense records, their automated approval and actuals."""
