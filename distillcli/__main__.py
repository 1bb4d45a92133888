from distillcli.cli import main

main()
