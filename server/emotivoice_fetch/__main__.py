from emotivoice_fetch.cli import entry

entry()
